"""The gateway operator's policy for one route: how long to wait for the provider, and
whether to check the provider's replies against the contract.

Routes come from the registry; their policy is the marketplace operator's, set per service
(``gembus gateway policy``). Unset fields fall back to the deployment's settings
(GEMBUS_GATEWAY_TIMEOUT_S, GEMBUS_GATEWAY_VALIDATE_RESPONSES). Every node picks a change up
with its next routing-table reload (the marketplace change counter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gembus.errors import InvalidValueError, NotFoundError

if TYPE_CHECKING:  # domain.ports names RoutePolicy
    from domain.ports import UnitOfWork

#: Longest provider timeout a route may have: a worker waits that long at most.
MAX_TIMEOUT_MS = 120_000
MARKETPLACE_COUNTER = "marketplace"


@dataclass(frozen=True)
class RoutePolicy:
    service_id: str
    timeout_ms: int | None = None
    response_validation: str | None = None  # "always", "off" or "sample:<fraction>"

    @property
    def timeout_s(self) -> float | None:
        return self.timeout_ms / 1000 if self.timeout_ms is not None else None


def parse_validation(mode: str, field: str = "responseValidation") -> str:
    """``always``, ``off`` or ``sample:<fraction in (0, 1]>``, normalised; else a fault."""
    mode = mode.strip().lower()
    if mode in ("always", "off"):
        return mode
    if mode.startswith("sample:"):
        try:
            fraction = float(mode.split(":", 1)[1])
        except ValueError:
            fraction = -1.0
        if 0 < fraction <= 1:
            return f"sample:{fraction:g}"
    raise InvalidValueError(
        f"{mode!r} is not a validation mode: use always, off or sample:<fraction in (0, 1]>",
        field=field,
    )


def check_timeout(timeout_ms: int, field: str = "timeoutMs") -> int:
    if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise InvalidValueError(
            f"a provider timeout is 1..{MAX_TIMEOUT_MS} ms, not {timeout_ms}", field=field
        )
    return timeout_ms


def set_policy(uow: UnitOfWork, actor: str, policy: RoutePolicy, at: datetime) -> RoutePolicy:
    """Store (or, with both fields None, clear) the route's policy; every node reloads."""
    if uow.marketplace.get_service(policy.service_id) is None:
        raise NotFoundError("Service", f"no service {policy.service_id}", field="serviceId")
    checked = RoutePolicy(
        policy.service_id,
        check_timeout(policy.timeout_ms) if policy.timeout_ms is not None else None,
        parse_validation(policy.response_validation)
        if policy.response_validation is not None
        else None,
    )
    uow.marketplace.set_route_policy(checked, actor, at)
    uow.marketplace.bump(MARKETPLACE_COUNTER)
    return checked
