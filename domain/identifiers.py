"""Identifier value objects of the e-mobility roaming domain (reference/DOMAIN.md section 7).

Every identifier keeps two values:

* ``wire``: the text exactly as the partner sent it. Responses, forwarded messages and CDRs
  echo this form; gembus never re-formats a partner's ID.
* ``key``: the normalised form (DOMAIN.md section 7.3). Joins, deduplication and look-ups use
  only the key, so ``DE*ICE*E1``, ``deicee1`` and the DIN form of the same EVSE meet.

Dataclass equality compares both fields: two objects with the same ``key`` but different
``wire`` are different *messages* about the same identifier. Compare ``.key`` to ask "same
identifier?".

Patterns are applied with ``re.fullmatch``: ``re.match`` with ``^...$`` would accept a trailing
newline, because ``$`` also matches before one. Case-insensitive patterns also carry
``re.ASCII``: with Unicode case folding ``[A-Z]`` matches the Kelvin sign (U+212A), the long
s (U+017F) and the dotless i (U+0131), which the XSD (``[A-Za-z]``) rejects and which
``str.upper()`` would silently turn into ASCII letters.

The XSD types in ``xsd/common/identifiers.xsd`` express the same syntax. Check digits, the
E.164 country mapping and the CDR ID prefix rule cannot be expressed in XSD, so a value can
be valid for the schema and still be rejected here; never the other way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

__all__ = [
    "E164_TO_ISO",
    "ContractId",
    "EvseId",
    "InvalidIdentifier",
    "OperatorId",
    "ProviderId",
    "SdrId",
    "din_check_digit",
    "emaid_check_digit",
]

_I = re.IGNORECASE | re.ASCII

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: E.164 country calling code -> ISO 3166-1 alpha-2, for the countries in scope
#: (DOMAIN.md section 7.3). Unmapped codes are rejected, never guessed.
E164_TO_ISO: dict[str, str] = {
    "49": "DE",
    "33": "FR",
    "45": "DK",
    "31": "NL",
    "43": "AT",
    "46": "SE",
    "44": "GB",
    "39": "IT",
    "34": "ES",
    "353": "IE",
    "32": "BE",
    "41": "CH",
    "47": "NO",
    "351": "PT",
}


class InvalidIdentifier(ValueError):
    """An identifier failed syntax, check-digit or consistency rules.

    ``kind`` names the identifier type (``evse_id``, ``contract_id``, ``operator_id``,
    ``provider_id``, ``sdr_id``) so the endpoint can answer ``Client.InvalidIdentifier``
    naming the field; ``reason`` is the human-readable cause.
    """

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {kind} {value!r}: {reason}")
        self.kind = kind
        self.value = value
        self.reason = reason


# --------------------------------------------------------------------------- check digits

_Vec = tuple[int, int]
_Mat = tuple[_Vec, _Vec]

_P1: _Mat = ((0, 1), (1, 1))  # mod 2
_P2: _Mat = ((0, 1), (1, 2))  # mod 3
_NEG_P2_INV15: _Mat = ((0, 2), (2, 1))  # -P2^-15 mod 3


def _require_alnum(text: str, length: int, what: str) -> str:
    upper = text.upper()
    if len(upper) != length or any(ch not in ALNUM for ch in upper):
        raise ValueError(f"{what} needs exactly {length} characters from 0-9A-Z, got {text!r}")
    return upper


def _rows(ch: str) -> tuple[_Vec, _Vec]:
    """The (mod-2 row, mod-3 row) pair ISO 15118-2 Annex H assigns to a character."""
    k = ALNUM.index(ch)
    q = k // 9
    return (q >> 1, q & 1), (k // 3 % 3, k % 3)


def _vec_mat(v: _Vec, m: _Mat, n: int) -> _Vec:
    return (
        (v[0] * m[0][0] + v[1] * m[1][0]) % n,
        (v[0] * m[0][1] + v[1] * m[1][1]) % n,
    )


def _mat_mat(a: _Mat, b: _Mat, n: int) -> _Mat:
    return (_vec_mat(a[0], b, n), _vec_mat(a[1], b, n))


def _vec_add(a: _Vec, b: _Vec, n: int) -> _Vec:
    return ((a[0] + b[0]) % n, (a[1] + b[1]) % n)


def emaid_check_digit(first14: str) -> str:
    """The ISO 15118-2 Annex H / eMI3 check character over an EMAID's first 14 characters.

    ``first14`` is the EMAID without hyphens and without check character (any case).
    The algorithm works on 2x2 matrices over GF(2) and GF(3); see DOMAIN.md section 7.2.
    """
    text = _require_alnum(first14, 14, "EMAID check digit input")
    t1: _Vec = (0, 0)
    t2: _Vec = (0, 0)
    p1, p2 = _P1, _P2
    for ch in text:
        r1, r2 = _rows(ch)
        t1 = _vec_add(t1, _vec_mat(r1, p1, 2), 2)
        t2 = _vec_add(t2, _vec_mat(r2, p2, 3), 3)
        p1, p2 = _mat_mat(p1, _P1, 2), _mat_mat(p2, _P2, 3)
    wanted = (t1, _vec_mat(t2, _NEG_P2_INV15, 3))
    return next(c for c in ALNUM if _rows(c) == wanted)


def din_check_digit(first11: str) -> str:
    """The DIN SPEC 91286 check digit over CC + provider + 6-character instance.

    Digits weigh ``2**e``; a letter (value 10..35) contributes its two decimal digits with
    weights ``2**e`` and ``2**(e+1)``. The sum mod 11 is the digit, ``X`` for 10.
    """
    text = _require_alnum(first11, 11, "DIN check digit input")
    total = 0
    exponent = 0
    for ch in text:
        value = ALNUM.index(ch)
        if value < 10:
            total += value * 2**exponent
            exponent += 1
        else:
            total += (value // 10) * 2**exponent + (value % 10) * 2 ** (exponent + 1)
            exponent += 2
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def _map_e164(kind: str, text: str, e164: str) -> str:
    try:
        return E164_TO_ISO[e164]
    except KeyError:
        raise InvalidIdentifier(kind, text, f"unmapped E.164 country code +{e164}") from None


# --------------------------------------------------------------------------- EVSE ID

_EVSE_ISO = re.compile(
    r"(?P<cc>[A-Z]{2})(?P<s>\*?)(?P<op>[A-Z0-9]{3})(?P=s)E(?P<outlet>[A-Z0-9][A-Z0-9*]{0,30})",
    _I,
)
_EVSE_DIN = re.compile(r"\+?(?P<cc>[0-9]{1,3})\*(?P<op>[0-9]{3})\*(?P<outlet>[0-9*]{1,32})")


@dataclass(frozen=True, slots=True)
class EvseId:
    """EVSE ID: ISO 15118-2 / eMI3 (``DE*ICE*E123456*7``) or legacy DIN (``+49*823*1234*5678``).

    There is no check digit: a trailing ``*7`` is part of the outlet ID. The key is upper case
    without ``*``; a DIN ID is first mapped to its ISO equivalent (OCHP mapping), so both forms
    of one EVSE share a key.
    """

    wire: str
    key: str
    form: Literal["iso", "din"]

    KIND: ClassVar[str] = "evse_id"

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse an EVSE ID in ISO or DIN form; raise ``InvalidIdentifier`` if it is neither."""
        if m := _EVSE_ISO.fullmatch(text):
            return cls(wire=text, key=text.replace("*", "").upper(), form="iso")
        if m := _EVSE_DIN.fullmatch(text):
            return cls(wire=text, key=cls._din_key(text, m), form="din")
        raise InvalidIdentifier(cls.KIND, text, "does not match the ISO or DIN EVSE ID pattern")

    @classmethod
    def _din_key(cls, text: str, m: re.Match[str]) -> str:
        """Map ``+CC*OOO*outlet`` to ``ISO*OOO*Eoutlet`` and normalise that.

        The mapped form must itself be a valid ISO EVSE ID: a DIN outlet that starts with
        ``*`` or has 32 characters has no ISO equivalent, so it gets no key (rejected).
        """
        iso = f"{_map_e164(cls.KIND, text, m['cc'])}*{m['op']}*E{m['outlet']}"
        if not _EVSE_ISO.fullmatch(iso):
            raise InvalidIdentifier(cls.KIND, text, f"DIN form maps to invalid ISO EVSE ID {iso}")
        return iso.replace("*", "")

    @property
    def operator_key(self) -> str:
        """The normalised operator ID key, e.g. ``DEICE``; ``DE823`` for ``+49*823*...``."""
        return self.key[:5]


# --------------------------------------------------------------------------- contract ID

_EMAID = re.compile(
    r"(?P<cc>[A-Z]{2})(?P<s>-?)(?P<prov>[A-Z0-9]{3})(?P=s)(?P<inst>[A-Z0-9]{9})"
    r"(?:(?P=s)(?P<check>[A-Z0-9]))?",
    _I,
)
_DIN_CONTRACT = re.compile(
    r"(?P<cc>[A-Z]{2})(?P<s>[*-]?)(?P<prov>[A-Z0-9]{3})(?P=s)(?P<inst>[A-Z0-9]{6})"
    r"(?P=s)(?P<check>[0-9X])",
    _I,
)


@dataclass(frozen=True, slots=True)
class ContractId:
    """Customer contract ID: ISO/eMI3 EMAID or DIN SPEC 91286 EVCO ID.

    The key is 14 characters in both forms so they compare: an EMAID drops hyphens and its
    check character; a DIN ID becomes CC + provider + ``00`` + instance + DIN check digit
    (OCHP "Backward Compatibility"), so ``NL-TNM-012204-5`` and ``NL-TNM-000122045-U`` meet.

    ``check_digit`` is the received check character (upper-cased), ``None`` for an EMAID
    sent without one. ``check_digit_valid`` is ``None`` when there is nothing to verify,
    ``False`` only when a mismatch was accepted under ``legacy_check_digits``.
    """

    wire: str
    key: str
    form: Literal["emaid", "din"]
    check_digit: str | None
    check_digit_valid: bool | None

    KIND: ClassVar[str] = "contract_id"

    @classmethod
    def parse(cls, text: str, *, legacy_check_digits: bool = False) -> Self:
        """Parse a contract ID and verify its check digit whenever one is present.

        gembus rule (DOMAIN.md 7.2): a wrong check digit is a validation failure. Partners
        flagged ``legacy_check_digits`` get it accepted with ``check_digit_valid=False``
        (the caller logs the warning).
        """
        if m := _EMAID.fullmatch(text):
            return cls._from_emaid(text, m, legacy_check_digits)
        if m := _DIN_CONTRACT.fullmatch(text):
            return cls._from_din(text, m, legacy_check_digits)
        raise InvalidIdentifier(
            cls.KIND, text, "does not match the EMAID or DIN contract ID pattern"
        )

    @classmethod
    def _from_emaid(cls, text: str, m: re.Match[str], legacy: bool) -> Self:
        first14 = f"{m['cc']}{m['prov']}{m['inst']}".upper()
        check = m["check"].upper() if m["check"] else None
        valid = None
        if check is not None:
            valid = cls._verify(text, check, emaid_check_digit(first14), legacy)
        return cls(wire=text, key=first14, form="emaid", check_digit=check, check_digit_valid=valid)

    @classmethod
    def _from_din(cls, text: str, m: re.Match[str], legacy: bool) -> Self:
        first11 = f"{m['cc']}{m['prov']}{m['inst']}".upper()
        check = m["check"].upper()
        valid = cls._verify(text, check, din_check_digit(first11), legacy)
        # The received digit goes into the key: under the legacy flag it is what the partner's
        # own systems put into the EMAID form of this contract.
        key = f"{first11[:5]}00{first11[5:]}{check}"
        return cls(wire=text, key=key, form="din", check_digit=check, check_digit_valid=valid)

    @classmethod
    def _verify(cls, text: str, received: str, expected: str, legacy: bool) -> bool:
        if received == expected:
            return True
        if legacy:
            return False
        raise InvalidIdentifier(cls.KIND, text, f"bad check digit: expected {expected}")

    @property
    def provider_key(self) -> str:
        """The normalised provider ID key of the home EVSP, e.g. ``DE8AA``."""
        return self.key[:5]


# --------------------------------------------------------------------------- operator / provider

_OPERATOR_ISO = re.compile(r"(?P<cc>[A-Z]{2})\*?(?P<op>[A-Z0-9]{3})", _I)
_OPERATOR_DIN = re.compile(r"\+?(?P<e164>[0-9]{1,3})\*(?P<dinop>[0-9]{3})")
_PROVIDER = re.compile(r"(?P<cc>[A-Z]{2})[*-]?(?P<prov>[A-Z0-9]{3})", _I)


@dataclass(frozen=True, slots=True)
class OperatorId:
    """EVSE operator ID (``DE*ICE``, ``DEICE``) or DIN E.164 form (``+49*823`` -> ``DE823``).

    The key is what ``EvseId.operator_key`` returns, so an upload's EVSE IDs can be checked
    against the uploader (OICP 018 "Inconsistent EvseID").
    """

    wire: str
    key: str

    KIND: ClassVar[str] = "operator_id"

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse an operator ID in ISO or DIN form."""
        if m := _OPERATOR_ISO.fullmatch(text):
            return cls(wire=text, key=f"{m['cc']}{m['op']}".upper())
        if m := _OPERATOR_DIN.fullmatch(text):
            return cls(wire=text, key=f"{_map_e164(cls.KIND, text, m['e164'])}{m['dinop']}")
        raise InvalidIdentifier(cls.KIND, text, "does not match the operator ID pattern")


@dataclass(frozen=True, slots=True)
class ProviderId:
    """EV service provider ID (``DE-8AA``, ``DE*BMW``, ``DE8AA``); key upper case, no separator.

    The key is what ``ContractId.provider_key`` returns (OICP 019 "Inconsistent EvcoID").
    """

    wire: str
    key: str

    KIND: ClassVar[str] = "provider_id"

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse a provider ID."""
        if m := _PROVIDER.fullmatch(text):
            return cls(wire=text, key=f"{m['cc']}{m['prov']}".upper())
        raise InvalidIdentifier(cls.KIND, text, "does not match the provider ID pattern")


# --------------------------------------------------------------------------- SDR / CDR ID

# Case-sensitive on purpose: OCHP CdrId is upper-case alphanumeric and compared exactly.
_SDR = re.compile(r"(?P<cpo>[A-Z]{2}[A-Z0-9]{3})[A-Z0-9]{1,31}")


@dataclass(frozen=True, slots=True)
class SdrId:
    """Service/charge detail record ID (OCHP 1.4 ``CdrId``), e.g. ``DEICE0000000001``.

    No normalisation: the key is the wire form. gembus requires the first five characters to
    be the uploading operator's ID key, which makes IDs unique across the clearing house
    (OCHP 1.3 IDs were only unique per EVSE).
    """

    wire: str
    key: str

    KIND: ClassVar[str] = "sdr_id"

    @classmethod
    def parse(cls, text: str, uploader_operator_key: str | None = None) -> Self:
        """Parse a CDR ID; given the uploader's ``OperatorId.key``, also check the prefix."""
        m = _SDR.fullmatch(text)
        if m is None:
            raise InvalidIdentifier(
                cls.KIND, text, "needs 6-36 upper-case letters/digits, starting with CC + 3"
            )
        if uploader_operator_key is not None and m["cpo"] != uploader_operator_key:
            raise InvalidIdentifier(
                cls.KIND,
                text,
                f"prefix {m['cpo']} is not the uploader's operator ID {uploader_operator_key}",
            )
        return cls(wire=text, key=text)

    @property
    def operator_key(self) -> str:
        """The operator ID key the record claims as uploader (first five characters)."""
        return self.key[:5]
