"""The unit of work: one transaction per request, rolled back unless ``commit()`` is called."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gembus.errors import ConflictError, UnavailableError
from persistence.clearing import SqlClearingRepository
from persistence.clearing_authorization import (
    SqlAuthorizationRepository,
    SqlCustomerContractRepository,
)
from persistence.evse import SqlEvseRepository
from persistence.marketplace import SqlMarketplaceRepository
from persistence.outbox import SqlOutboxRepository
from persistence.repositories import SqlPartnerRepository
from persistence.reservations import SqlReservationRepository
from persistence.sdr import SqlSdrRepository
from persistence.transaction_log import SqlCallLogReader


class SqlUnitOfWork:
    """Opens a session on enter; repositories share it; exit rolls back what is uncommitted."""

    partners: SqlPartnerRepository
    marketplace: SqlMarketplaceRepository
    outbox: SqlOutboxRepository
    customer_contracts: SqlCustomerContractRepository
    authorizations: SqlAuthorizationRepository
    sdrs: SqlSdrRepository
    clearing: SqlClearingRepository
    evses: SqlEvseRepository
    reservations: SqlReservationRepository
    gateway_calls: SqlCallLogReader

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def __enter__(self) -> Self:
        self.session = self.session_factory()
        self.partners = SqlPartnerRepository(self.session)
        self.marketplace = SqlMarketplaceRepository(self.session)
        self.outbox = SqlOutboxRepository(self.session)
        self.customer_contracts = SqlCustomerContractRepository(self.session)
        self.authorizations = SqlAuthorizationRepository(self.session)
        self.sdrs = SqlSdrRepository(self.session)
        self.clearing = SqlClearingRepository(self.session)
        self.evses = SqlEvseRepository(self.session)
        self.reservations = SqlReservationRepository(self.session)
        self.gateway_calls = SqlCallLogReader(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()
        if exc is not None:
            translate(exc)

    def commit(self) -> None:
        try:
            self.session.commit()
        except DBAPIError as exc:
            translate(exc)
            raise


def translate(exc: BaseException) -> None:
    """Turn SQLAlchemy's errors into gembus errors where they enter (STYLE.md §6)."""
    if isinstance(exc, IntegrityError):
        # A concurrent request won the race for a unique key: the caller's record exists.
        raise ConflictError(
            "Record", "a record with the same key was written concurrently"
        ) from exc
    if (isinstance(exc, DBAPIError) and exc.connection_invalidated) or _is_operational(exc):
        raise UnavailableError("the database is unavailable; retry later") from exc


def _is_operational(exc: BaseException) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)
