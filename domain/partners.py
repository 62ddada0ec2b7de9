"""Business partners: who they are, which roles they play, which e-mobility IDs they own."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from domain.identifiers import OperatorId, ProviderId


class Role(enum.StrEnum):
    """Marketplace roles (DOMAIN.md §1); the values are the contract's PartnerRoleType."""

    EVSE_OPERATOR = "EvseOperator"
    EVSP = "Evsp"
    DSO = "Dso"
    SEARCH_PROVIDER = "SearchProvider"
    MARKETPLACE_OPERATOR = "MarketplaceOperator"


class PartnerStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class Contact:
    email: str
    telephone: str | None = None
    person: str | None = None


@dataclass(frozen=True)
class Address:
    country: str
    city: str
    postal_code: str | None = None
    street: str | None = None
    house_number: str | None = None
    floor: str | None = None
    region: str | None = None
    time_zone: str | None = None


@dataclass(frozen=True)
class PartnerData:
    """What a partner states about itself; IDs keep the wire form they were registered with."""

    legal_name: str
    roles: tuple[Role, ...]
    contact: Contact
    operator_ids: tuple[OperatorId, ...] = ()
    provider_ids: tuple[ProviderId, ...] = ()
    address: Address | None = None

    def has_role(self, role: Role) -> bool:
        return role in self.roles


@dataclass
class Partner:
    partner_id: str
    status: PartnerStatus
    data: PartnerData
    created_at: datetime
    updated_at: datetime
    credentials_rotated_at: datetime | None = field(default=None)

    @property
    def is_active(self) -> bool:
        return self.status is PartnerStatus.ACTIVE

    def has_role(self, role: Role) -> bool:
        return self.data.has_role(role)
