"""UsernameToken credentials for the authenticator, cached per process and always current.

Every request needs the partner's clear password (for the PasswordDigest) and its domain
record. Decrypting and loading both on every call cost two queries and a Fernet decrypt; here
they are cached per partner, and each request reads only the ``partners`` change counter
(one primary-key SELECT), which every partner change bumps in its own transaction. So a
deactivation or a password rotation is effective on every worker and node at the very next
request, while an unchanged partner costs one tiny query.
"""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from bus.wsse import Credential
from domain.partners import PartnerStatus
from gembus.secrets import Vault
from persistence.marketplace import SqlMarketplaceRepository
from persistence.repositories import PARTNERS_COUNTER, SqlPartnerRepository


class CachedCredentialStore:
    """Implements bus.wsse.CredentialStore."""

    def __init__(self, session_factory: sessionmaker[Session], vault: Vault) -> None:
        self.session_factory = session_factory
        self.vault = vault
        self._cache: dict[str, Credential] = {}
        self._version = -1
        self._lock = threading.Lock()

    def credential_for(self, username: str) -> Credential | None:
        with self.session_factory() as session:
            version = SqlMarketplaceRepository(session).counter(PARTNERS_COUNTER)
            with self._lock:
                if version != self._version:
                    self._cache.clear()
                    self._version = version
                cached = self._cache.get(username)
            if cached is not None:
                return cached
            loaded = self._load(session, username)
        if loaded is not None:
            with self._lock:
                if self._version == version:
                    self._cache[username] = loaded
        return loaded

    def _load(self, session: Session, username: str) -> Credential | None:
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
        )
