"""Identifier parses the clearing house repeats on every request, remembered per process.

An AuthorizeRoaming names the same few EVSEs, operators and contracts again and again, and
parsing a contract ID verifies its check digit (ISO 15118-2 Annex H matrix arithmetic, tens
of microseconds). The value objects are immutable, so a parse can be reused; an invalid ID
raises every time (exceptions are not remembered).
"""

from __future__ import annotations

from functools import lru_cache

from domain.identifiers import ContractId, EvseId, OperatorId

_SIZE = 65_536


@lru_cache(maxsize=_SIZE)
def contract_id(wire: str) -> ContractId:
    return ContractId.parse(wire)


@lru_cache(maxsize=_SIZE)
def evse_id(wire: str) -> EvseId:
    return EvseId.parse(wire)


@lru_cache(maxsize=1024)
def operator_id(wire: str) -> OperatorId:
    return OperatorId.parse(wire)
