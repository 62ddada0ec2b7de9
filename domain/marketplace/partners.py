"""Partner registration and lookup: the rules, independent of SOAP and SQL.

Each function is one use case run inside one unit of work; nothing is written unless every
rule passed, and the caller acknowledges only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from domain.identifiers import InvalidIdentifier, OperatorId, ProviderId
from domain.partners import Contact, Partner, PartnerData, PartnerStatus, Role
from domain.ports import PasswordVault, UnitOfWork
from gembus.errors import (
    ClientError,
    ConflictError,
    InvalidIdentifierError,
    InvalidPagingError,
    InvalidStateError,
    MissingIdentifierError,
    NotAuthorizedError,
    NotFoundError,
)

_T = TypeVar("_T")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


#: The actor for administrative paths that have no SOAP caller (CLI, demo data): it acts with
#: the marketplace operator's rights and is never stored.
SYSTEM_ACTOR = Partner(
    "gembus-system",
    PartnerStatus.ACTIVE,
    PartnerData("gembus system", (Role.MARKETPLACE_OPERATOR,), Contact("root@localhost")),
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),
)


class RoleMismatchError(ClientError):
    fault_code = "Client.RoleMismatch"
    default_message = "identifiers were given for a role the partner does not have"


@dataclass(frozen=True)
class Page:
    """A 1-based page request, checked against the limits every list shares."""

    number: int = 1
    size: int = DEFAULT_PAGE_SIZE

    def __post_init__(self) -> None:
        if self.number < 1:
            raise InvalidPagingError("page numbers start at 1", field="paging/page")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise InvalidPagingError(
                f"pageSize must be 1..{MAX_PAGE_SIZE}", field="paging/pageSize"
            )

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def parse_identifiers(
    operator_ids: Sequence[str], provider_ids: Sequence[str]
) -> tuple[tuple[OperatorId, ...], tuple[ProviderId, ...]]:
    """Parse the wire IDs, naming the offending list position in the fault."""
    operators = tuple(
        parse_identifier(OperatorId.parse, text, f"data/operatorIds/operatorId[{i}]")
        for i, text in enumerate(operator_ids, 1)
    )
    providers = tuple(
        parse_identifier(ProviderId.parse, text, f"data/providerIds/providerId[{i}]")
        for i, text in enumerate(provider_ids, 1)
    )
    return operators, providers


def parse_identifier(parse: Callable[[str], _T], text: str, field: str) -> _T:
    """Parse a wire ID; a malformed one is Client.InvalidIdentifier naming ``field``."""
    try:
        return parse(text)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(f"{text!r}: {exc.reason}", field=field) from exc


def check_roles(data: PartnerData) -> None:
    """An operator needs operator IDs, an EVSP provider IDs, and IDs need their role."""
    if data.has_role(Role.EVSE_OPERATOR) and not data.operator_ids:
        raise MissingIdentifierError(
            "the EvseOperator role needs an operator ID", field="data/operatorIds"
        )
    if data.has_role(Role.EVSP) and not data.provider_ids:
        raise MissingIdentifierError("the Evsp role needs a provider ID", field="data/providerIds")
    if data.operator_ids and not data.has_role(Role.EVSE_OPERATOR):
        raise RoleMismatchError("operator IDs need the EvseOperator role", field="data/operatorIds")
    if data.provider_ids and not data.has_role(Role.EVSP):
        raise RoleMismatchError("provider IDs need the Evsp role", field="data/providerIds")


def _check_identifiers_free(uow: UnitOfWork, data: PartnerData, owner: str) -> None:
    """Each operator/provider ID (by normalised key) belongs to one partner only."""
    checks: tuple[tuple[str, tuple[OperatorId | ProviderId, ...], str], ...] = (
        ("operator", data.operator_ids, "data/operatorIds/operatorId"),
        ("provider", data.provider_ids, "data/providerIds/providerId"),
    )
    for kind, ids, path in checks:
        seen: set[str] = set()
        for i, ident in enumerate(ids, 1):
            holder = uow.partners.owner_of_identifier(kind, ident.key)
            if ident.key in seen or (holder is not None and holder != owner):
                raise ConflictError(
                    "Identifier",
                    f"{kind} ID {ident.wire} is already registered"
                    + (f" to partner {holder}" if holder and holder != owner else ""),
                    field=f"{path}[{i}]",
                )
            seen.add(ident.key)


def _require_operator(actor: Partner) -> None:
    if not actor.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError("only the marketplace operator may do this")


def _require_self_or_operator(actor: Partner, partner_id: str) -> None:
    if actor.partner_id != partner_id and not actor.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError("a partner may change only itself", field="partnerId")


def _load(uow: UnitOfWork, partner_id: str) -> Partner:
    partner = uow.partners.get(partner_id)
    if partner is None:
        raise NotFoundError("Partner", f"no partner {partner_id}", field="partnerId")
    return partner


def register_partner(
    uow: UnitOfWork,
    vault: PasswordVault,
    actor: Partner,
    partner_id: str,
    data: PartnerData,
    password: str,
) -> Partner:
    """Register an active partner (marketplace operator only)."""
    _require_operator(actor)
    check_roles(data)
    if uow.partners.get(partner_id) is not None:
        raise ConflictError("Partner", f"partner {partner_id} already exists", field="partnerId")
    _check_identifiers_free(uow, data, partner_id)
    now = datetime.now(UTC)
    partner = Partner(partner_id, PartnerStatus.ACTIVE, data, now, now)
    uow.partners.add(partner, vault.hash(password), vault.seal(password))
    return partner


def self_register_partner(
    uow: UnitOfWork, vault: PasswordVault, partner_id: str, data: PartnerData, password: str
) -> Partner:
    """A partner registers itself: stored as pending until the marketplace operator approves.

    Nobody may self-register as marketplace operator; a pending partner cannot authenticate.
    """
    if data.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError(
            "the MarketplaceOperator role cannot be self-registered", field="data/roles"
        )
    check_roles(data)
    if uow.partners.get(partner_id) is not None:
        raise ConflictError("Partner", f"partner {partner_id} already exists", field="partnerId")
    _check_identifiers_free(uow, data, partner_id)
    now = datetime.now(UTC)
    partner = Partner(partner_id, PartnerStatus.PENDING, data, now, now)
    uow.partners.add(partner, vault.hash(password), vault.seal(password))
    return partner


def update_partner(uow: UnitOfWork, actor: Partner, partner_id: str, data: PartnerData) -> Partner:
    """Replace a partner's stated data (itself or the marketplace operator)."""
    _require_self_or_operator(actor, partner_id)
    partner = _load(uow, partner_id)
    check_roles(data)
    _check_identifiers_free(uow, data, partner_id)
    updated = replace(partner, data=data, updated_at=datetime.now(UTC))
    uow.partners.update(updated)
    return updated


def _set_status(uow: UnitOfWork, partner: Partner, status: PartnerStatus) -> Partner:
    updated = replace(partner, status=status, updated_at=datetime.now(UTC))
    uow.partners.update(updated)
    return updated


def approve_partner(uow: UnitOfWork, actor: Partner, partner_id: str) -> Partner:
    """Activate a pending (self-registered) partner."""
    _require_operator(actor)
    partner = _load(uow, partner_id)
    if partner.status is not PartnerStatus.PENDING:
        raise InvalidStateError(
            f"partner {partner_id} is {partner.status}, not pending", field="partnerId"
        )
    return _set_status(uow, partner, PartnerStatus.ACTIVE)


def deactivate_partner(uow: UnitOfWork, actor: Partner, partner_id: str) -> Partner:
    """Deactivate a partner; its credentials stop working at once."""
    _require_operator(actor)
    if partner_id == actor.partner_id:
        raise InvalidStateError(
            "the marketplace operator cannot deactivate itself", field="partnerId"
        )
    return _set_status(uow, _load(uow, partner_id), PartnerStatus.DEACTIVATED)


def rotate_credentials(
    uow: UnitOfWork, vault: PasswordVault, actor: Partner, partner_id: str, password: str
) -> None:
    """Replace the UsernameToken password (itself or the marketplace operator)."""
    _require_self_or_operator(actor, partner_id)
    _load(uow, partner_id)
    uow.partners.set_credentials(partner_id, vault.hash(password), vault.seal(password))


def get_partner(uow: UnitOfWork, partner_id: str) -> Partner:
    """Any active partner may look another up: the partner directory is shared."""
    return _load(uow, partner_id)


def list_partners(
    uow: UnitOfWork, role: Role | None, status: PartnerStatus | None, page: Page
) -> tuple[list[Partner], int]:
    """One page of partners ordered by partnerId, with the total count."""
    partners, total = uow.partners.list(
        role=role, status=status, offset=page.offset, limit=page.size
    )
    if page.number > 1 and not partners and page.offset >= total:
        raise InvalidPagingError(f"page {page.number} is past the last page", field="paging/page")
    return partners, total
