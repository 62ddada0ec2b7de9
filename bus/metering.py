"""Usage metering: every call made under a service contract is counted for usage and billing.

Until the gateway's transaction log exists (it will feed the same table), gembus meters the
calls partners make to gembus's own services: the calling partner's active contract for the
family, provided by the marketplace operator's partner, is found through SRV 1967's cache and
one row is written per call. Calls beyond the contract's daily or monthly quota are flagged,
so billing can charge the overrun price.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.marketplace.usage import over_quota
from domain.marketplace.validation import ContractValidator
from domain.ports import UnitOfWork


@dataclass
class UsageMeter:
    validator: ContractValidator
    uow: Callable[[], UnitOfWork]
    operator_partner_id: str

    def record(
        self,
        partner_id: str | None,
        family: str,
        operation: str,
        fault_code: str | None,
        latency_ms: float,
        at: datetime | None = None,
    ) -> str | None:
        """Record the call if it was made under a contract; returns that contract's ID."""
        if partner_id is None or partner_id == self.operator_partner_id:
            return None
        at = at or datetime.now(UTC)
        answer = self.validator.validate_service_contract(
            partner_id, self.operator_partner_id, interface=(family, 1), at=at
        )
        if not answer.valid:
            return None
        contract = answer.contracts[0][0]
        with self.uow() as uow:
            over = over_quota(uow, contract.contract_id, contract.terms.quota, at)
            uow.marketplace.record_call(
                contract.contract_id, at, operation, fault_code, latency_ms, over
            )
            uow.commit()
        return contract.contract_id
