"""The identity store behind WS-Security: cached credentials, and nonces in the database.

Every request needs the partner's clear password (for the PasswordDigest), its domain record
and a nonce that no worker or node has seen. Credentials are cached per process; recording
the nonce reads, in the same statement, the ``partners`` change counter that every partner
change bumps in its own transaction, so a warm request costs ONE statement and a cached
credential is re-read whenever any partner changed (deactivation and password rotation are
effective at the very next request on every worker).

Nonces travel on their own small engine whose PostgreSQL sessions run with
``synchronous_commit=off``: the reply does not wait for an fsync of the nonce row. A crash
can lose only the last moments of nonces, and their Created window closes within minutes.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bus.wsse import Consumed, Credential
from domain.partners import PartnerStatus
from gembus.secrets import Vault
from persistence.fastpath import PreparedStatement
from persistence.repositories import (
    PARTNERS_COUNTER,
    SqlPartnerRepository,
    purge_expired_nonces,
)

_COUNTER = text("SELECT value FROM change_counter WHERE name = :name")
_CONSUME_PG = (
    "WITH inserted AS (INSERT INTO wsse_nonce (username, nonce, expires_at) "
    "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1) "
    "SELECT (SELECT count(*) FROM inserted), (SELECT value FROM change_counter WHERE name = $4)"
)
# SQLite has no data-modifying CTE: the insert's own RETURNING and a scalar subquery.
_CONSUME_PORTABLE = (
    "INSERT INTO wsse_nonce (username, nonce, expires_at) VALUES (:u, :n, :e) "
    "ON CONFLICT DO NOTHING RETURNING 1, (SELECT value FROM change_counter WHERE name = :name)"
)


class SqlIdentityStore:
    """Implements bus.wsse.IdentityStore."""

    PURGE_EVERY = 1000

    def __init__(
        self, session_factory: sessionmaker[Session], nonces: Engine, vault: Vault
    ) -> None:
        self.session_factory = session_factory
        self.nonces = nonces
        self.vault = vault
        self._cache: dict[str, Credential] = {}
        self._lock = threading.Lock()
        self._calls = 0
        self._consume = PreparedStatement(
            nonces, "gembus_consume_nonce", _CONSUME_PG, _CONSUME_PORTABLE, ("u", "n", "e", "name")
        )

    def credential_for(self, username: str, *, fresh: bool = False) -> Credential | None:
        if not fresh:
            with self._lock:
                cached = self._cache.get(username)
            if cached is not None:
                return cached
        with self.session_factory() as session:
            version = session.execute(_COUNTER, {"name": PARTNERS_COUNTER}).scalar() or 0
            loaded = self._load(session, username, version)
        with self._lock:
            if loaded is None:
                self._cache.pop(username, None)
            else:
                self._cache[username] = loaded
        return loaded

    def consume(self, username: str, nonce: str, expires_at: datetime, version: int) -> Consumed:
        self._calls += 1
        if self._calls % self.PURGE_EVERY == 1:
            purge_expired_nonces(self.nonces)
        row = self._consume.execute(
            {"u": username, "n": nonce, "e": expires_at, "name": PARTNERS_COUNTER}
        )
        inserted, current = (int(row[0]), row[1]) if row else (0, None)
        if not row and not self._consume.on_postgres:  # conflict: no row came back
            with self.session_factory() as session:
                current = session.execute(_COUNTER, {"name": PARTNERS_COUNTER}).scalar()
        if (current or 0) != version:
            with self._lock:
                self._cache.clear()  # some partner changed: every cached credential is suspect
        return Consumed(fresh=bool(inserted), current=(current or 0) == version)

    def _load(self, session: Session, username: str, version: int) -> Credential | None:
        partners = SqlPartnerRepository(session)
        found = partners.sealed_credential(username)
        if found is None:
            return None
        _hash, sealed, status = found
        return Credential(
            username,
            self.vault.open(sealed),
            status is PartnerStatus.ACTIVE,
            partners.get(username),
            version,
        )
