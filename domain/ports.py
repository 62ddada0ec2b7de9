"""Interfaces the domain needs from the outside; persistence and gembus implement them.

The domain never imports SQLAlchemy: repositories return domain objects and the unit of work
rolls back unless told to commit.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from domain.partners import Partner, PartnerData, PartnerStatus, Role


class PartnerRepository(Protocol):
    def add(self, partner: Partner, password_hash: str, sealed_password: str) -> None: ...

    def get(self, partner_id: str) -> Partner | None: ...

    def list(
        self, *, role: Role | None, status: PartnerStatus | None, offset: int, limit: int
    ) -> tuple[list[Partner], int]: ...

    def owner_of_identifier(self, kind: str, key: str) -> str | None:
        """The partner that owns the operator/provider ID with this normalised key."""
        ...

    def update(self, partner: Partner) -> None: ...

    def set_credentials(
        self, partner_id: str, password_hash: str, sealed_password: str
    ) -> None: ...


class PasswordVault(Protocol):
    """Hashes passwords for verification and seals them for PasswordDigest checks."""

    def hash(self, password: str) -> str: ...

    def seal(self, password: str) -> str: ...

    def open(self, sealed: str) -> str: ...


class UnitOfWork(Protocol):
    @property
    def partners(self) -> PartnerRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


__all__ = ["PartnerData", "PartnerRepository", "PasswordVault", "UnitOfWork"]
