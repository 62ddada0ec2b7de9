"""Password handling: argon2 hashes for verification, Fernet-sealed copies for PasswordDigest.

The UsernameToken PasswordDigest can only be checked with the clear password, so gembus keeps
it encrypted with a deployment key (SECURITY.md §4) next to an argon2 hash used for
PasswordText and web logins.
"""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from cryptography.fernet import Fernet, InvalidToken

from gembus.errors import ServerError


class SecretKeyError(ServerError):
    fault_code = "Server.Configuration"
    default_message = "the credential store cannot be opened with the configured key"


class Vault:
    """Implements domain.ports.PasswordVault."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())
        self._hasher = PasswordHasher()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except VerificationError:
            return False

    def seal(self, password: str) -> str:
        return self._fernet.encrypt(password.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError() from exc


def resolve_key(configured: str, key_file: Path) -> str:
    """The configured key, or a development key kept in ``key_file`` (created on first use)."""
    if configured:
        return configured
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key
