"""Leases of singleton jobs (ARCHITECTURE §5): one holder at a time across every process.

On PostgreSQL a lease is a session advisory lock (``pg_try_advisory_lock`` on the name's
64-bit hash) taken on a connection of its own and held while the job runs. It needs no table
and no expiry: it ends when the block does, or when the holder's process dies and its
connection closes, so a killed worker never leaves a lease behind. The job's own
transactions run on other connections, which is why a transaction-scoped lock would not do
(a pull records its failure after its data's rollback).

SQLite has no such locks, and gembus runs one worker there: the lease is a lock of this
process, per database and name (threads of one worker still exclude each other).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

#: SQLite's leases: (database URL, lease name) -> the lock of this process.
_IN_PROCESS: dict[tuple[str, str], threading.Lock] = {}
_IN_PROCESS_GUARD = threading.Lock()
_TRY = text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))")
_RELEASE = text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))")


class AdvisoryLeases:
    """Implements domain.ports.Leases."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        if self.engine.dialect.name != "postgresql":
            with self._in_process(name) as held:
                yield held
            return
        with self.engine.connect() as connection:
            held = bool(connection.execute(_TRY, {"name": name}).scalar())
            connection.commit()  # the lock is the session's: no transaction stays open
            try:
                yield held
            finally:
                if held:
                    _release(connection, name)

    @contextmanager
    def _in_process(self, name: str) -> Iterator[bool]:
        with _IN_PROCESS_GUARD:
            key = (self.engine.url.render_as_string(hide_password=False), name)
            lock = _IN_PROCESS.setdefault(key, threading.Lock())
        held = lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()


def _release(connection: Connection, name: str) -> None:
    try:
        connection.execute(_RELEASE, {"name": name})
        connection.commit()
    except DBAPIError:  # the connection broke: its session, and the lock with it, are gone
        connection.invalidate()
