"""The request context every pipeline step and endpoint receives."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.marketplace.catalogue import ContractInspector
from domain.marketplace.validation import ContractValidator
from domain.partners import Partner
from domain.ports import PasswordVault, UnitOfWork
from gembus.errors import AuthenticationError


def new_message_id() -> str:
    """A gembus message id: quoted in faults, logged on every line of the request."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Services:
    """Built once per process by gembus.bootstrap, shared by every request."""

    validator: ContractValidator
    inspector: ContractInspector


@dataclass
class RequestContext:
    """Who is calling, through which family, and the services a handler may use."""

    message_id: str
    family: str
    uow: Callable[[], UnitOfWork]
    vault: PasswordVault
    log: Any
    operation: str | None = None
    #: The authenticated partner; None only for operations the pipeline lets in anonymously.
    partner: Partner | None = None
    #: Process-wide services handlers may need (SRV 1967 validator, contract inspector).
    services: Services | None = None

    @property
    def shared(self) -> Services:
        assert self.services is not None, "gembus.bootstrap sets the shared services"
        return self.services

    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @property
    def actor(self) -> Partner:
        """The authenticated partner; operations that need one can never run anonymously."""
        if self.partner is None:
            raise AuthenticationError("a WS-Security UsernameToken header is required")
        return self.partner
