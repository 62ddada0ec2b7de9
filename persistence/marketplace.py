"""Marketplace repository: services, offerings, contracts, roaming agreements and usage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from domain.identifiers import OperatorId, ProviderId
from domain.marketplace.model import (
    InterfaceRef,
    LifecycleState,
    Offering,
    OfferingStatus,
    Quota,
    RoamingAgreement,
    Service,
    ServiceCategory,
    ServiceContract,
    ServiceData,
    Terms,
    UsageCall,
    Validity,
)
from domain.route_policy import RoutePolicy
from persistence.repositories import bump_counter
from persistence.tables import (
    ChangeCounterRow,
    OfferingRow,
    RoamingAgreementRow,
    RoutePolicyRow,
    ServiceContractRow,
    ServiceRow,
    UsageCallRow,
)

Page = tuple[int, int]  # (offset, limit)


class SqlMarketplaceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # ---------------------------------------------------------------- services
    def add_service(self, service: Service) -> None:
        row = ServiceRow(service_id=service.service_id, created_at=service.created_at)
        _write_service(row, service)
        self.session.add(row)
        self.session.flush()

    def update_service(self, service: Service) -> None:
        row = self.session.scalar(
            select(ServiceRow).where(ServiceRow.service_id == service.service_id)
        )
        assert row is not None
        _write_service(row, service)
        self.session.flush()

    def get_service(self, service_id: str) -> Service | None:
        row = self.session.scalar(select(ServiceRow).where(ServiceRow.service_id == service_id))
        return _service(row) if row else None

    def browse(
        self,
        *,
        category: ServiceCategory | None,
        family: str | None,
        version: int | None,
        provider_id: str | None,
        text: str | None,
        states: Sequence[LifecycleState],
        page: Page,
    ) -> tuple[list[Service], int]:
        query = select(ServiceRow).where(ServiceRow.state.in_([s.value for s in states]))
        if category:
            query = query.where(ServiceRow.category == category.value)
        if family:
            query = query.where(ServiceRow.family == family)
        if version:
            query = query.where(ServiceRow.version == version)
        if provider_id:
            query = query.where(ServiceRow.provider_id == provider_id)
        if text:
            like = f"%{text.lower()}%"
            query = query.where(
                or_(
                    func.lower(ServiceRow.name).like(like),
                    func.lower(ServiceRow.description).like(like),
                )
            )
        rows, total = self._page(query.order_by(ServiceRow.name, ServiceRow.service_id), page)
        return [_service(r) for r in rows], total

    # --------------------------------------------------------------- offerings
    def add_offering(self, offering: Offering) -> None:
        row = OfferingRow(
            offering_id=offering.offering_id,
            service_id=offering.service_id,
            provider_id=offering.provider_id,
            created_at=offering.created_at,
        )
        _write_offering(row, offering)
        self.session.add(row)
        self.session.flush()

    def update_offering(self, offering: Offering) -> None:
        row = self.session.scalar(
            select(OfferingRow).where(OfferingRow.offering_id == offering.offering_id)
        )
        assert row is not None
        _write_offering(row, offering)
        self.session.flush()

    def get_offering(self, offering_id: str) -> Offering | None:
        row = self.session.scalar(select(OfferingRow).where(OfferingRow.offering_id == offering_id))
        return _offering(row) if row else None

    def list_offerings(
        self,
        *,
        service_id: str | None,
        provider_id: str | None,
        status: OfferingStatus | None,
        page: Page,
    ) -> tuple[list[Offering], int]:
        query = select(OfferingRow)
        if service_id:
            query = query.where(OfferingRow.service_id == service_id)
        if provider_id:
            query = query.where(OfferingRow.provider_id == provider_id)
        if status:
            query = query.where(OfferingRow.status == status.value)
        rows, total = self._page(
            query.order_by(OfferingRow.created_at, OfferingRow.offering_id), page
        )
        return [_offering(r) for r in rows], total

    def open_offerings_of(self, service_id: str) -> list[Offering]:
        rows = self.session.scalars(
            select(OfferingRow).where(
                OfferingRow.service_id == service_id,
                OfferingRow.status == OfferingStatus.OPEN.value,
            )
        )
        return [_offering(r) for r in rows]

    # --------------------------------------------------------------- contracts
    def add_contract(self, contract: ServiceContract) -> None:
        row = ServiceContractRow(contract_id=contract.contract_id)
        _write_contract(row, contract)
        self.session.add(row)
        self.session.flush()

    def update_contract(self, contract: ServiceContract) -> None:
        row = self.session.scalar(
            select(ServiceContractRow).where(ServiceContractRow.contract_id == contract.contract_id)
        )
        assert row is not None
        _write_contract(row, contract)
        self.session.flush()

    def get_contract(self, contract_id: str) -> ServiceContract | None:
        row = self.session.scalar(
            select(ServiceContractRow).where(ServiceContractRow.contract_id == contract_id)
        )
        return _contract(row) if row else None

    def contracts_of(
        self,
        partner_id: str,
        *,
        as_requester: bool,
        as_provider: bool,
        service_id: str | None,
        counterpart: str | None,
    ) -> list[ServiceContract]:
        """Every contract the partner is party to in these roles; the caller filters status."""
        sides = []
        if as_requester:
            sides.append(ServiceContractRow.requester_id == partner_id)
        if as_provider:
            sides.append(ServiceContractRow.provider_id == partner_id)
        query = select(ServiceContractRow).where(or_(*sides))
        if service_id:
            query = query.where(ServiceContractRow.service_id == service_id)
        if counterpart:
            query = query.where(
                or_(
                    ServiceContractRow.requester_id == counterpart,
                    ServiceContractRow.provider_id == counterpart,
                )
            )
        rows = self.session.scalars(
            query.order_by(ServiceContractRow.accepted_at, ServiceContractRow.id)
        )
        return [_contract(r) for r in rows]

    def contracts_between(
        self, requester_id: str, provider_id: str
    ) -> list[tuple[ServiceContract, Service]]:
        """All contracts of the pair with their services: SRV 1967 decides among them."""
        query = (
            select(ServiceContractRow, ServiceRow)
            .join(ServiceRow, ServiceRow.service_id == ServiceContractRow.service_id)
            .where(
                ServiceContractRow.requester_id == requester_id,
                ServiceContractRow.provider_id == provider_id,
            )
            .order_by(ServiceContractRow.accepted_at)
        )
        return [(_contract(c), _service(s)) for c, s in self.session.execute(query)]

    def active_contracts_of_service(self, service_id: str) -> list[ServiceContract]:
        rows = self.session.scalars(
            select(ServiceContractRow).where(
                ServiceContractRow.service_id == service_id,
                ServiceContractRow.terminated_at.is_(None),
            )
        )
        return [_contract(r) for r in rows]

    # ------------------------------------------------------ roaming agreements
    def add_agreement(self, agreement: RoamingAgreement) -> None:
        row = RoamingAgreementRow(agreement_id=agreement.agreement_id)
        _write_agreement(row, agreement)
        self.session.add(row)
        self.session.flush()

    def update_agreement(self, agreement: RoamingAgreement) -> None:
        row = self.session.scalar(
            select(RoamingAgreementRow).where(
                RoamingAgreementRow.agreement_id == agreement.agreement_id
            )
        )
        assert row is not None
        _write_agreement(row, agreement)
        self.session.flush()

    def get_agreement(self, agreement_id: str) -> RoamingAgreement | None:
        row = self.session.scalar(
            select(RoamingAgreementRow).where(RoamingAgreementRow.agreement_id == agreement_id)
        )
        return _agreement(row) if row else None

    def agreements_between(self, operator_key: str, provider_key: str) -> list[RoamingAgreement]:
        rows = self.session.scalars(
            select(RoamingAgreementRow)
            .where(
                RoamingAgreementRow.operator_key == operator_key,
                RoamingAgreementRow.provider_key == provider_key,
            )
            .order_by(RoamingAgreementRow.valid_from)
        )
        return [_agreement(r) for r in rows]

    def agreements_of(
        self, partner_id: str | None, operator_key: str | None, provider_key: str | None
    ) -> list[RoamingAgreement]:
        query = select(RoamingAgreementRow)
        if partner_id:
            query = query.where(
                or_(
                    RoamingAgreementRow.operator_partner_id == partner_id,
                    RoamingAgreementRow.provider_partner_id == partner_id,
                )
            )
        if operator_key:
            query = query.where(RoamingAgreementRow.operator_key == operator_key)
        if provider_key:
            query = query.where(RoamingAgreementRow.provider_key == provider_key)
        rows = self.session.scalars(
            query.order_by(RoamingAgreementRow.valid_from, RoamingAgreementRow.id)
        )
        return [_agreement(r) for r in rows]

    # ------------------------------------------------------------------ usage
    def record_call(
        self,
        contract_id: str,
        at: datetime,
        operation: str,
        fault_code: str | None,
        latency_ms: float,
        over_quota: bool = False,
    ) -> None:
        self.session.add(
            UsageCallRow(
                contract_id=contract_id,
                at=at,
                operation=operation,
                fault_code=fault_code,
                latency_ms=latency_ms,
                over_quota=over_quota,
            )
        )
        self.session.flush()

    def count_calls(self, contract_id: str, start: datetime, end: datetime) -> int:
        return (
            self.session.scalar(
                select(func.count()).where(
                    UsageCallRow.contract_id == contract_id,
                    UsageCallRow.at >= start,
                    UsageCallRow.at < end,
                )
            )
            or 0
        )

    def calls(self, contract_id: str, start: datetime, end: datetime) -> list[UsageCall]:
        """Every recorded call under the contract in [start, end), oldest first."""
        columns = (
            UsageCallRow.at,
            UsageCallRow.fault_code,
            UsageCallRow.latency_ms,
            UsageCallRow.over_quota,
        )
        rows = self.session.execute(
            select(*columns)
            .where(
                UsageCallRow.contract_id == contract_id,
                UsageCallRow.at >= start,
                UsageCallRow.at < end,
            )
            .order_by(UsageCallRow.at)
        )
        return [UsageCall(at, fault, latency, over) for at, fault, latency, over in rows]

    # --------------------------------------------------------------- counters
    def bump(self, name: str) -> None:
        """Increment a change counter in the caller's transaction (caches poll it)."""
        bump_counter(self.session, name)

    # ----------------------------------------------------------- route policies
    def set_route_policy(self, policy: RoutePolicy, actor: str, at: datetime) -> None:
        """Upsert; a policy with nothing set is removed (the route takes the defaults)."""
        row = self.session.get(RoutePolicyRow, policy.service_id)
        if policy.timeout_ms is None and policy.response_validation is None:
            if row is not None:
                self.session.delete(row)
            self.session.flush()
            return
        if row is None:
            row = RoutePolicyRow(service_id=policy.service_id)
            self.session.add(row)
        row.timeout_ms = policy.timeout_ms
        row.response_validation = policy.response_validation
        row.updated_at = at
        row.updated_by = actor
        self.session.flush()

    def route_policies(self) -> dict[str, RoutePolicy]:
        return {
            row.service_id: RoutePolicy(row.service_id, row.timeout_ms, row.response_validation)
            for row in self.session.scalars(select(RoutePolicyRow))
        }

    def counter(self, name: str) -> int:
        return (
            self.session.scalar(select(ChangeCounterRow.value).where(ChangeCounterRow.name == name))
            or 0
        )

    def _page(self, query: Select[Any], page: Page) -> tuple[list[Any], int]:
        total = (
            self.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            or 0
        )
        rows = list(self.session.scalars(query.offset(page[0]).limit(page[1])))
        return rows, total


def _write_service(row: ServiceRow, service: Service) -> None:
    data = service.data
    row.provider_id, row.state = service.provider_id, service.state.value
    row.name, row.category, row.description = data.name, data.category.value, data.description
    row.family, row.version, row.endpoint_url = (
        data.interface.family,
        data.interface.version,
        data.endpoint_url,
    )
    row.updated_at = service.updated_at


def _service(row: ServiceRow) -> Service:
    data = ServiceData(
        row.name,
        ServiceCategory(row.category),
        InterfaceRef(row.family, row.version),
        row.endpoint_url,
        row.description,
    )
    return Service(
        row.service_id,
        row.provider_id,
        LifecycleState(row.state),
        data,
        row.created_at,
        row.updated_at,
    )


def terms_to_json(terms: Terms) -> str:
    quota = terms.quota
    return json.dumps(
        {
            "currency": terms.currency,
            "price_per_call": _dec(terms.price_per_call),
            "monthly_fee": _dec(terms.monthly_fee),
            "quota": None
            if quota is None
            else {
                "per_day": quota.per_day,
                "per_month": quota.per_month,
                "overrun_price": _dec(quota.overrun_price),
            },
        }
    )


def terms_from_json(text: str) -> Terms:
    raw = json.loads(text)
    quota = raw["quota"]
    return Terms(
        raw["currency"],
        _undec(raw["price_per_call"]),
        _undec(raw["monthly_fee"]),
        None
        if quota is None
        else Quota(quota["per_day"], quota["per_month"], _undec(quota["overrun_price"])),
    )


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _write_offering(row: OfferingRow, offering: Offering) -> None:
    row.name, row.description = offering.name, offering.description
    row.terms_json = terms_to_json(offering.terms)
    row.valid_from, row.valid_to = offering.validity.valid_from, offering.validity.valid_to
    row.status = offering.status.value


def _offering(row: OfferingRow) -> Offering:
    return Offering(
        row.offering_id,
        row.service_id,
        row.provider_id,
        row.name,
        terms_from_json(row.terms_json),
        Validity(row.valid_from, row.valid_to),
        OfferingStatus(row.status),
        row.created_at,
        row.description,
    )


def _write_contract(row: ServiceContractRow, c: ServiceContract) -> None:
    row.offering_id, row.service_id = c.offering_id, c.service_id
    row.provider_id, row.requester_id = c.provider_id, c.requester_id
    row.terms_json = terms_to_json(c.terms)
    row.valid_from, row.valid_to = c.validity.valid_from, c.validity.valid_to
    row.accepted_at, row.requester_reference = c.accepted_at, c.requester_reference
    row.terminated_at, row.terminated_by = c.terminated_at, c.terminated_by
    row.termination_reason = c.termination_reason


def _contract(row: ServiceContractRow) -> ServiceContract:
    return ServiceContract(
        row.contract_id,
        row.offering_id,
        row.service_id,
        row.provider_id,
        row.requester_id,
        terms_from_json(row.terms_json),
        Validity(row.valid_from, row.valid_to),
        row.accepted_at,
        row.requester_reference,
        row.terminated_at,
        row.terminated_by,
        row.termination_reason,
    )


def _write_agreement(row: RoamingAgreementRow, a: RoamingAgreement) -> None:
    row.operator_wire, row.operator_key = a.operator_id.wire, a.operator_id.key
    row.provider_wire, row.provider_key = a.provider_id.wire, a.provider_id.key
    row.operator_partner_id, row.provider_partner_id = a.operator_partner_id, a.provider_partner_id
    row.valid_from, row.valid_to = a.validity.valid_from, a.validity.valid_to
    row.created_at, row.created_by = a.created_at, a.created_by
    row.terminated_at, row.terminated_by = a.terminated_at, a.terminated_by
    row.termination_reason = a.termination_reason


def _agreement(row: RoamingAgreementRow) -> RoamingAgreement:
    return RoamingAgreement(
        row.agreement_id,
        OperatorId.parse(row.operator_wire),
        row.operator_partner_id,
        ProviderId.parse(row.provider_wire),
        row.provider_partner_id,
        Validity(row.valid_from, row.valid_to),
        row.created_at,
        row.created_by,
        row.terminated_at,
        row.terminated_by,
        row.termination_reason,
    )
