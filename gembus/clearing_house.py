"""Wiring of the clearing house's roaming authorization (called by gembus.bootstrap).

The :class:`~domain.clearing.authorizer.Authorizer` needs, besides SRV 1967's validator:
the stored-list cache over the database, the zeep client for live EVSPs, where each EVSP's
live endpoint is (its published ``authorization`` v1 service in the marketplace registry,
found through a routing table like the gateway's, bus/routing.py), which EVSPs hold a
roaming agreement with an operator, and the decision log on the hot-path engine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.live_evsp import ZeepLiveEvsp
from bus.routing import Router
from domain.clearing.authorizer import Authorizer, StoredListCache
from domain.marketplace.model import AgreementStatus
from domain.marketplace.validation import ContractValidator
from gembus.errors import GembusError
from gembus.logging import get_logger
from persistence.authorization_log import DecisionLog
from persistence.clearing_authorization import SqlStoredFacts
from persistence.unit_of_work import SqlUnitOfWork

#: The marketplace family an EVSP registers its live authorization endpoint under.
LIVE_FAMILY = ("authorization", 1)


def build_authorizer(
    session_factory: sessionmaker[Session],
    fast: Engine,
    validator: ContractValidator,
    operator_partner_id: str,
) -> Authorizer:
    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(session_factory)

    log = get_logger("gembus.authorization")
    return Authorizer(
        agreements=validator,
        facts=StoredListCache(SqlStoredFacts(session_factory)),
        live=ZeepLiveEvsp(),
        live_endpoint=live_endpoints(Router(uow, operator_partner_id)),
        roaming_partners=roaming_partners(uow),
        log=DecisionLog(fast),
        on_error=lambda exc: log.error("authorization.internal_error", error=repr(exc)),
    )


def live_endpoints(router: Router) -> Callable[[str], str | None]:
    """The endpoint of an EVSP's own published authorization service, if it has one."""

    def find(partner_id: str) -> str | None:
        family, version = LIVE_FAMILY
        try:
            route = router.table.for_partner(family, partner_id, version)
        except GembusError:  # none published, or several: no live endpoint to ask
            return None
        return None if route.local else route.endpoint_url

    return find


def roaming_partners(
    uow: Callable[[], SqlUnitOfWork],
) -> Callable[[str, datetime], list[tuple[str, str]]]:
    """(provider key, EVSP partner) of the roaming agreements an operator key holds at t."""

    def find(operator_key: str, at: datetime) -> list[tuple[str, str]]:
        with uow() as unit:
            agreements = unit.marketplace.agreements_of(None, operator_key, None)
        return [
            (a.provider_id.key, a.provider_partner_id)
            for a in agreements
            if a.status_at(at) is AgreementStatus.ACTIVE
        ]

    return find
