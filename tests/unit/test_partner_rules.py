"""Partner rules in the domain, with an in-memory unit of work (no SQL involved)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import pytest

from domain.marketplace import partners as uc
from domain.partners import Contact, Partner, PartnerData, PartnerStatus, Role
from gembus.errors import (
    ConflictError,
    InvalidIdentifierError,
    InvalidPagingError,
    InvalidStateError,
    MissingIdentifierError,
    NotAuthorizedError,
)


class MemoryPartners:
    def __init__(self) -> None:
        self.rows: dict[str, Partner] = {}

    def add(self, partner: Partner, password_hash: str, sealed_password: str) -> None:
        self.rows[partner.partner_id] = partner

    def get(self, partner_id: str) -> Partner | None:
        return self.rows.get(partner_id)

    def list(
        self, *, role: Role | None, status: PartnerStatus | None, offset: int, limit: int
    ) -> tuple[list[Partner], int]:
        found = sorted(
            (
                p
                for p in self.rows.values()
                if (role is None or p.has_role(role)) and (status is None or p.status is status)
            ),
            key=lambda p: p.partner_id,
        )
        return found[offset : offset + limit], len(found)

    def owner_of_identifier(self, kind: str, key: str) -> str | None:
        for p in self.rows.values():
            ids = p.data.operator_ids if kind == "operator" else p.data.provider_ids
            if any(i.key == key for i in ids):
                return p.partner_id
        return None

    def update(self, partner: Partner) -> None:
        self.rows[partner.partner_id] = partner

    def set_credentials(self, partner_id: str, password_hash: str, sealed_password: str) -> None:
        pass


class MemoryUow:
    def __init__(self) -> None:
        self.partners = MemoryPartners()
        self.committed = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def commit(self) -> None:
        self.committed += 1


class PlainVault:
    def hash(self, password: str) -> str:
        return "h:" + password

    def seal(self, password: str) -> str:
        return "s:" + password

    def open(self, sealed: str) -> str:
        return sealed[2:]


def data(
    roles: tuple[Role, ...], operators: tuple[str, ...] = (), providers: tuple[str, ...] = ()
) -> PartnerData:
    ops, provs = uc.parse_identifiers(operators, providers)
    return PartnerData("Name", roles, Contact("a@b.example"), ops, provs)


def actor(role: Role) -> Partner:
    now = datetime.now(UTC)
    return Partner(
        "someone",
        PartnerStatus.ACTIVE,
        data((role,), ("DE*SOM",) if role is Role.EVSE_OPERATOR else ()),
        now,
        now,
    )


def test_only_the_marketplace_operator_registers() -> None:
    with pytest.raises(NotAuthorizedError):
        uc.register_partner(
            MemoryUow(), PlainVault(), actor(Role.EVSE_OPERATOR), "x-1", data((Role.DSO,)), "p" * 12
        )


@pytest.mark.parametrize(
    ("partner_data", "error", "field"),
    [
        (lambda: data((Role.EVSE_OPERATOR,)), MissingIdentifierError, "data/operatorIds"),
        (lambda: data((Role.EVSP,)), MissingIdentifierError, "data/providerIds"),
        (
            lambda: data((Role.DSO,), operators=("DE*ICE",)),
            uc.RoleMismatchError,
            "data/operatorIds",
        ),
        (
            lambda: data((Role.EVSE_OPERATOR,), operators=("DE*ICE", "deice")),
            ConflictError,
            "data/operatorIds/operatorId[2]",
        ),
    ],
)
def test_role_and_identifier_rules(
    partner_data: object, error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as raised:
        uc.register_partner(
            MemoryUow(), PlainVault(), uc.SYSTEM_ACTOR, "x-1", partner_data(), "p" * 12
        )  # type: ignore[operator]
    assert raised.value.field == field  # type: ignore[attr-defined]


def test_identifier_syntax_errors_name_the_position() -> None:
    with pytest.raises(InvalidIdentifierError) as raised:
        uc.parse_identifiers(["DE*ICE", "+99*123"], [])
    assert raised.value.field == "data/operatorIds/operatorId[2]"


def test_deactivation_and_approval_follow_the_status_rules() -> None:
    uow = MemoryUow()
    uc.register_partner(
        uow,
        PlainVault(),
        uc.SYSTEM_ACTOR,
        "cpo-1",
        data((Role.EVSE_OPERATOR,), ("IT*ABC",)),
        "p" * 12,
    )
    with pytest.raises(InvalidStateError):
        uc.approve_partner(uow, uc.SYSTEM_ACTOR, "cpo-1")
    assert uc.deactivate_partner(uow, uc.SYSTEM_ACTOR, "cpo-1").status is PartnerStatus.DEACTIVATED
    with pytest.raises(NotAuthorizedError):
        uc.update_partner(uow, actor(Role.EVSP), "cpo-1", data((Role.DSO,)))


@pytest.mark.parametrize(("number", "size"), [(0, 10), (1, 0), (1, 1001)])
def test_paging_limits(number: int, size: int) -> None:
    with pytest.raises(InvalidPagingError):
        uc.Page(number, size)


def test_a_page_past_the_end_is_a_fault_but_an_empty_first_page_is_not() -> None:
    uow = MemoryUow()
    assert uc.list_partners(uow, None, None, uc.Page(1, 10)) == ([], 0)
    with pytest.raises(InvalidPagingError):
        uc.list_partners(uow, None, None, uc.Page(3, 10))
