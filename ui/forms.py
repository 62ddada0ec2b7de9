"""HTML forms: what a page posts, the contract rules the XSD applies on the SOAP path, and
the mapping of a domain error's field path onto the input that caused it.

The SOAP path validates every request against xsd/marketplace.xsd before the domain sees
it; a browser form skips that step, so the same simple-type rules are checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from werkzeug.datastructures import MultiDict

from domain.marketplace.partners import parse_identifiers
from domain.partners import Address, Contact, PartnerData, Role
from gembus.errors import GembusError

#: cmn:PartnerIdType, cmn:EmailType, cmn:TelephoneType, cmn:CountryCodeType (XSD patterns
#: are anchored, hence fullmatch).
PARTNER_ID = re.compile(r"[a-z0-9][a-z0-9\-]{2,63}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
TELEPHONE = re.compile(r"\+?[1-9]?[0-9 \-]{1,17}")
COUNTRY = re.compile(r"[A-Z]{2}")
#: PasswordType: 12 to 128 characters.
PASSWORD_LENGTH = range(12, 129)
#: OperatorIdListType / ProviderIdListType maxOccurs.
MAX_IDENTIFIERS = 100

#: Roles a partner may pick when it registers itself (never the marketplace operator).
SELF_REGISTRATION_ROLES = (Role.EVSE_OPERATOR, Role.EVSP, Role.DSO, Role.SEARCH_PROVIDER)

#: Domain field paths (the SOAP fault's ``field``, list positions removed) -> form inputs.
FIELD_FOR_PATH = {
    "partnerId": "partnerId",
    "password": "password",
    "data/legalName": "legalName",
    "data/roles": "roles",
    "data/operatorIds": "operatorIds",
    "data/providerIds": "providerIds",
    "data/contact/email": "email",
    "data/contact/telephone": "telephone",
    "data/contact/person": "person",
    "data/address": "city",
    "data/address/country": "country",
    "data/address/city": "city",
    "data/address/postalCode": "postalCode",
    "data/address/street": "street",
}


def form_field_for(path: str | None) -> str | None:
    """``data/operatorIds/operatorId[2]`` -> ``operatorIds``: the nearest mapped ancestor."""
    bare = re.sub(r"\[\d+\]", "", path or "")
    while bare:
        if bare in FIELD_FOR_PATH:
            return FIELD_FOR_PATH[bare]
        bare = bare.rpartition("/")[0]
    return None


@dataclass
class Form:
    """Submitted values (to re-fill the inputs) and one error per input (shown next to it)."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    chosen: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_post(cls, posted: MultiDict[str, str], multi: tuple[str, ...] = ()) -> Form:
        values = {k: v.strip() for k, v in posted.items() if not k.startswith("password")}
        return cls(values, {}, {name: posted.getlist(name) for name in multi})

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def optional(self, name: str) -> str | None:
        return self.get(name) or None

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def add_domain_error(self, error: GembusError) -> None:
        """Show a use case's error next to its input, or above the form if none matches."""
        self.error(form_field_for(error.field) or "_form", error.message)

    @property
    def valid(self) -> bool:
        return not self.errors


def check_password_pair(form: Form, posted: Mapping[str, str], name: str = "password") -> str:
    """The new password if it has the contract's length and the confirmation matches."""
    password, confirm = posted.get(name, ""), posted.get(f"{name}Confirm", "")
    if len(password) not in PASSWORD_LENGTH:
        form.error(name, "Use 12 to 128 characters.")
    elif password != confirm:
        form.error(f"{name}Confirm", "The two passwords do not match.")
    return password


def split_identifiers(text: str) -> list[str]:
    """Operator and provider IDs are typed as one list, separated by commas or spaces."""
    return [part for part in re.split(r"[,\s]+", text) if part]


def registration_form(posted: MultiDict[str, str]) -> tuple[Form, str]:
    """The self-registration form checked against the contract's simple types."""
    form = Form.from_post(posted, multi=("roles",))
    _check_pattern(form, "partnerId", PARTNER_ID, "Use 3 to 64 lower-case letters, digits or -.")
    _check_text(form, "legalName", 255, required=True)
    _check_pattern(form, "email", EMAIL, "Enter an e-mail address such as ops@example.com.")
    if len(form.get("email")) > 254:
        form.error("email", "Use at most 254 characters.")
    if form.get("telephone"):
        _check_pattern(form, "telephone", TELEPHONE, "Enter a number such as +49 30 1234567.")
    _check_text(form, "person", 255)
    _check_roles(form)
    for name in ("operatorIds", "providerIds"):
        if len(split_identifiers(form.get(name))) > MAX_IDENTIFIERS:
            form.error(name, f"Give at most {MAX_IDENTIFIERS} IDs.")
    _check_address(form)
    return form, check_password_pair(form, posted)


def partner_data(form: Form) -> PartnerData:
    """The domain's PartnerData; identifier errors raise with the domain's field path."""
    operators, providers = parse_identifiers(
        split_identifiers(form.get("operatorIds")), split_identifiers(form.get("providerIds"))
    )
    contact = Contact(form.get("email"), form.optional("telephone"), form.optional("person"))
    return PartnerData(
        form.get("legalName"),
        tuple(Role(r) for r in form.chosen["roles"]),
        contact,
        operators,
        providers,
        _address(form),
    )


def _address(form: Form) -> Address | None:
    if not form.get("country"):
        return None
    return Address(
        form.get("country"),
        form.get("city"),
        postal_code=form.optional("postalCode"),
        street=form.optional("street"),
    )


def _check_pattern(form: Form, name: str, pattern: re.Pattern[str], hint: str) -> None:
    if not pattern.fullmatch(form.get(name)):
        form.error(name, hint if form.get(name) else "This field is required.")


def _check_text(form: Form, name: str, longest: int, *, required: bool = False) -> None:
    if required and not form.get(name):
        form.error(name, "This field is required.")
    elif len(form.get(name)) > longest:
        form.error(name, f"Use at most {longest} characters.")


def _check_roles(form: Form) -> None:
    allowed = {role.value for role in SELF_REGISTRATION_ROLES}
    roles = form.chosen["roles"]
    if not roles:
        form.error("roles", "Choose at least one role.")
    elif not set(roles) <= allowed:
        form.error("roles", "Choose among the roles listed.")


def _check_address(form: Form) -> None:
    """The address is optional, but once given it needs a country and a city."""
    form.values["country"] = form.get("country").upper()
    if not any(form.get(n) for n in ("country", "city", "postalCode", "street")):
        return
    if not COUNTRY.fullmatch(form.get("country")):
        form.error("country", "Enter the two-letter ISO code, e.g. DE.")
    _check_text(form, "city", 64, required=True)
    _check_text(form, "postalCode", 10)
    _check_text(form, "street", 255)
