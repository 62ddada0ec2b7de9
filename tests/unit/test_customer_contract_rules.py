"""Screening of customer-contract uploads (domain/clearing/customer_contracts.py), no database.

Each record gets its own result; the reject reasons of the contract's RecordRejectReasonType
are produced by the rule that owns them, naming the offending field.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from domain.clearing.customer_contracts import (
    ContractStatus,
    CustomerContract,
    EntitledService,
    RecordResult,
    RejectReason,
    Token,
    UploadMode,
    UploadRequest,
    canonical_json,
    contract_from_dict,
    contract_to_dict,
    reject_token_conflicts,
    screen,
)
from domain.identifiers import ProviderId
from domain.marketplace.model import Validity

NOW = datetime(2026, 11, 25, tzinfo=UTC)
TNM = ProviderId.parse("NL-TNM")
VALID = Validity(NOW - timedelta(days=1), NOW + timedelta(days=365))


def contract(contract_id: str, *tokens: Token, validity: Validity = VALID) -> CustomerContract:
    return CustomerContract(contract_id, ContractStatus.ACTIVE, validity, tokens)


def results(request: UploadRequest) -> list[tuple[str, RejectReason | None, str | None]]:
    screened = screen(request, TNM)
    for accepted in screened.upserts + screened.deletions:
        screened.settle(accepted.position, RecordResult.CREATED)
    return [(r.contract_id, r.reason, r.field) for r in screened.outcomes()]


def test_each_record_is_judged_on_its_own_and_named_by_its_field() -> None:
    request = UploadRequest(
        "NL-TNM",
        UploadMode.DELTA,
        (
            contract("NL-TNM-000122045-U"),
            contract("NL-TNM-012204-5"),  # the DIN form of the first
            contract("DE-8AA-001234567-0"),  # another provider
            contract("NL-TNM-000122045-X"),  # bad check digit (and a duplicate key)
            contract("NL-TNM-C00000001-Q", Token("AB", "rfid"), Token("CD", "remote")),
            contract("NL-TNM-C00000002-N", validity=Validity(NOW, NOW - timedelta(seconds=1))),
        ),
        deletions=("NL-TNM-C00000003-P", "NL-TNM-C00000002-N"),
    )
    assert results(request) == [
        ("NL-TNM-000122045-U", None, None),
        ("NL-TNM-012204-5", RejectReason.DUPLICATE_IN_UPLOAD, "contracts/contract[2]/contractId"),
        ("DE-8AA-001234567-0", RejectReason.EVCO_INCONSISTENT, "contracts/contract[3]/contractId"),
        (
            "NL-TNM-000122045-X",
            RejectReason.INVALID_CHECK_DIGIT,
            "contracts/contract[4]/contractId",
        ),
        (
            "NL-TNM-C00000001-Q",
            RejectReason.REMOTE_TOKEN_NOT_ALLOWED,
            "contracts/contract[5]/tokens/token[2]/tokenType",
        ),
        (
            "NL-TNM-C00000002-N",
            RejectReason.INVALID_VALIDITY,
            "contracts/contract[6]/validity/validTo",
        ),
        ("NL-TNM-C00000003-P", None, None),
        ("NL-TNM-C00000002-N", None, None),  # its upsert was rejected: the deletion stands
    ]


def test_deletions_belong_in_delta_uploads_only() -> None:
    request = UploadRequest("NL-TNM", UploadMode.FULL, deletions=("NL-TNM-C00000003-P",))
    assert results(request) == [
        ("NL-TNM-C00000003-P", RejectReason.DELETION_IN_FULL_UPLOAD, "deletions/contractId[1]")
    ]


def test_one_token_cannot_open_two_contracts() -> None:
    digest = hashlib.sha256(b"AB12").hexdigest()
    request = UploadRequest(
        "NL-TNM",
        UploadMode.DELTA,
        (
            contract("NL-TNM-C00000001-Q", Token("ab12", "rfid")),
            contract("NL-TNM-C00000002-N", Token(digest, "rfid", None, "sha-256")),
        ),
    )
    assert results(request)[1][1:] == (
        RejectReason.TOKEN_CONFLICT,
        "contracts/contract[2]/tokens",
    ), "the plain UID and its SHA-256 are the same card"


def test_a_token_stored_for_another_contract_conflicts_unless_that_one_moves_too() -> None:
    card = Token("AB12", "rfid")
    owners = dict.fromkeys(card.digests(), "NLTNMC00000009")
    request = UploadRequest("NL-TNM", UploadMode.DELTA, (contract("NL-TNM-C00000001-Q", card),))
    screened = screen(request, TNM)
    reject_token_conflicts(screened, owners)
    assert screened.slots[0].outcome is not None
    assert screened.slots[0].outcome.reason is RejectReason.TOKEN_CONFLICT
    moved = UploadRequest(
        "NL-TNM",
        UploadMode.DELTA,
        (contract("NL-TNM-C00000001-Q", card),),
        deletions=("NL-TNM-C00000009-2",),
    )
    screened = screen(moved, TNM)
    reject_token_conflicts(screened, dict.fromkeys(card.digests(), "NLTNMC00000009"))
    assert [a.key for a in screened.upserts] == ["NLTNMC00000001"]


def test_chunks_that_arrived_before_count_for_duplicates() -> None:
    earlier = (contract("NL-TNM-000122045-U"),)
    request = UploadRequest("NL-TNM", UploadMode.FULL, (contract("NL-TNM-012204-5"),))
    screened = screen(request, TNM, earlier)
    assert screened.slots[0].outcome is not None
    assert screened.slots[0].outcome.reason is RejectReason.DUPLICATE_IN_UPLOAD


@pytest.mark.parametrize(
    ("status", "valid_to", "reads_as"),
    [
        (ContractStatus.ACTIVE, None, ContractStatus.ACTIVE),
        (ContractStatus.BLOCKED, NOW + timedelta(days=1), ContractStatus.BLOCKED),
        (ContractStatus.ACTIVE, NOW, ContractStatus.EXPIRED),
        (ContractStatus.BLOCKED, NOW - timedelta(days=1), ContractStatus.EXPIRED),
    ],
)
def test_a_contract_past_its_validity_reads_as_expired(
    status: ContractStatus, valid_to: datetime | None, reads_as: ContractStatus
) -> None:
    record = CustomerContract(
        "NL-TNM-000122045-U", status, Validity(NOW - timedelta(days=9), valid_to)
    )
    assert record.status_at(NOW) is reads_as


def test_services_default_to_charging_and_follow_their_own_validity() -> None:
    plain = contract("NL-TNM-000122045-U")
    assert [s.service_type for s in plain.services_at(NOW)] == ["charging"]
    later = EntitledService("reservation", "Reservation", (), Validity(NOW + timedelta(days=1)))
    rich = CustomerContract(
        "NL-TNM-000122045-U",
        ContractStatus.ACTIVE,
        VALID,
        (),
        None,
        (EntitledService("parking"), later),
    )
    assert [s.service_type for s in rich.services_at(NOW)] == ["parking"]


def test_the_stored_form_round_trips_and_hashes_stay_stable() -> None:
    record = CustomerContract(
        "NL-TNM-000122045-U",
        ContractStatus.BLOCKED,
        VALID,
        (Token("4F2A19C3", "rfid", "mifareCls", "plain"),),
        "NL-TNM-012204-5",
        (EntitledService("reservation", "Reservation", (), VALID),),
    )
    again = contract_from_dict(contract_to_dict(record))
    assert again == record
    assert canonical_json(again) == canonical_json(record)
    assert again.content_hash() != contract("NL-TNM-000122045-U").content_hash()
