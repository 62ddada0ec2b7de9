"""The request context every pipeline step and endpoint receives."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from domain.marketplace.catalogue import ContractInspector
from domain.marketplace.validation import ContractValidator
from domain.partners import Partner
from domain.ports import PasswordVault, UnitOfWork
from gembus.errors import AuthenticationError

if TYPE_CHECKING:
    from bus.relay import GatewayRelay
    from domain.charging.search import Match, SearchQuery
    from domain.clearing.authorizer import Authorizer

    #: Search EVSE's hot shape answered without a unit of work; None: not of that shape.
    NearSearch = Callable[[SearchQuery], tuple[list[Match], int] | None]


def new_message_id() -> str:
    """A gembus message id: quoted in faults, logged on every line of the request."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Services:
    """Built once per process by gembus.bootstrap, shared by every request."""

    validator: ContractValidator
    inspector: ContractInspector
    #: The clearing house's roaming authorization (domain/clearing/authorizer.py).
    authorizer: Authorizer | None = None
    #: gembus's own services asking a partner's service through the gateway (bus/relay.py).
    relay: GatewayRelay | None = None
    #: Proximity searches on a connection the worker keeps (persistence/evse.py NearSearch).
    near_search: NearSearch | None = None


class DeferredNonce(Protocol):
    """A caller whose UsernameToken checked out but whose nonce is still to be recorded.

    For operations that record it in their own database statement (bus/pipeline.py,
    ``deferred_nonce_operations``): the handler writes ``claim`` with its data and then calls
    ``settle`` with what that statement learnt, which raises Client.Authentication for a
    replay (the statement wrote nothing then) or a partner that changed meanwhile.
    """

    @property
    def claim(self) -> tuple[str, str, datetime] | None:
        """Still to record; None once recorded (``consume``) or for a token without nonce."""
        ...

    @property
    def settled(self) -> bool: ...

    def settle(self, fresh: bool, partners_version: int) -> None: ...

    def consume(self) -> None:
        """Record it now in its own statement (before the handler calls a partner system)."""
        ...


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
    #: Set when this operation records the caller's nonce itself (see DeferredNonce).
    deferred_nonce: DeferredNonce | None = None

    @property
    def shared(self) -> Services:
        assert self.services is not None, "gembus.bootstrap sets the shared services"
        return self.services

    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Units of work for a single read statement (no transaction round trips); None: ``uow``.
    reader: Callable[[], UnitOfWork] | None = None

    def read(self) -> UnitOfWork:
        """A unit of work for one read statement: on PostgreSQL it runs in autocommit, so the
        request pays no BEGIN and ROLLBACK round trips. Use ``uow`` for anything that writes,
        or reads with several statements that must see one snapshot."""
        return (self.reader or self.uow)()

    @property
    def actor(self) -> Partner:
        """The authenticated partner; operations that need one can never run anonymously."""
        if self.partner is None:
            raise AuthenticationError("a WS-Security UsernameToken header is required")
        return self.partner
