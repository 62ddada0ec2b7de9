"""Typed settings, read once from ``GEMBUS_*`` environment variables.

Every default is the safe one: XML limits on, PasswordText off, SQLite in ``var/`` so that
``make run`` works on an empty machine. The environ is injectable so tests never mutate
``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A ``GEMBUS_*`` variable has a value that cannot be used."""


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'gembus.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    """All gembus settings; field docs are copied into the README table."""

    #: SQLAlchemy URL; postgresql+psycopg2://… in production, embedded SQLite by default.
    database_url: str = field(default_factory=_default_database_url)
    #: Public base URL written into served WSDLs; empty = taken from each request's Host.
    public_url: str = ""
    #: Largest accepted SOAP request body in bytes (guard step 1).
    max_body_bytes: int = 2 * 1024 * 1024
    #: Deepest accepted element nesting (guard step 5).
    max_depth: int = 32
    #: Most attributes on one element (guard step 5).
    max_attributes: int = 64
    #: Most namespace declarations on one element (guard step 5).
    max_namespace_declarations: int = 32
    #: Most SOAP header blocks (guard step 8).
    max_header_blocks: int = 16
    #: Accepted clock difference for wsu:Created, seconds (nonces are kept twice as long).
    wsse_created_window_s: int = 300
    #: Accept wsse PasswordText (only behind TLS; OCHP partners need it).
    allow_password_text: bool = False
    #: Key that encrypts stored UsernameToken secrets (PasswordDigest needs the clear password);
    #: a Fernet key. Empty: a key file in var/ is created on first use (development only).
    secret_key: str = ""
    #: Partner ID under which gembus's own services are offered in the catalogue (usage metering).
    operator_partner_id: str = "gembus-admin"
    #: Seconds the gateway waits for an external provider before Server.ProviderTimeout.
    gateway_timeout_s: float = 10.0
    #: Calls per second one partner may route through the gateway, per process (0 = no limit).
    gateway_rate_per_second: float = 50.0
    #: Validate providers' replies: "always", "off", or "sample:<fraction>" (e.g. sample:0.01).
    gateway_validate_responses: str = "sample:0.05"
    #: Validate every inbound Body against the canonical XSD.
    validate_requests: bool = True
    #: Attempts at delivering one outbox row before it becomes a dead letter.
    outbox_max_attempts: int = 8
    #: First retry delay of an outbox delivery, seconds; it doubles per attempt (with jitter).
    outbox_backoff_base_s: float = 30.0
    #: Longest retry delay of an outbox delivery, seconds.
    outbox_backoff_cap_s: float = 3600.0
    #: Seconds the delivery worker waits for a subscriber's Notify answer.
    outbox_timeout_s: float = 10.0
    #: Seconds an idle delivery worker waits before it looks for due rows again.
    outbox_poll_s: float = 1.0
    #: Seconds gembus waits for each page of a pull from an operator's CLM (then the pull fails).
    clm_pull_timeout_s: float = 30.0
    #: Log level (DEBUG, INFO, WARNING, ERROR).
    log_level: str = "INFO"
    #: Log format: "json" for machines, "console" for people.
    log_format: str = "console"
    #: gunicorn bind address for `gembus serve`.
    bind: str = "127.0.0.1:8000"
    #: gunicorn worker processes for `gembus serve`.
    workers: int = 2
    #: Seconds a gunicorn worker may spend on one request before it is restarted.
    worker_timeout_s: int = 30

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``GEMBUS_<FIELD>`` variables, converting by the field's type."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"GEMBUS_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, str(f.type), raw)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _convert(name: str, type_name: str, raw: str) -> object:
    if type_name == "bool":
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"GEMBUS_{name.upper()}={raw!r} is not a boolean")
    if type_name == "float":
        try:
            return float(raw)
        except ValueError as exc:
            raise SettingsError(f"GEMBUS_{name.upper()}={raw!r} is not a number") from exc
    if type_name == "int":
        try:
            return int(raw)
        except ValueError as exc:
            raise SettingsError(f"GEMBUS_{name.upper()}={raw!r} is not an integer") from exc
    return raw
