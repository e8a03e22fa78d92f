"""Rewriting a journal into a fresh file: deleted bytes really gone, or a new passphrase."""

from __future__ import annotations

import os
import time

import duckdb

from ..errors import InputError, StoreError
from .connection import Gate, current_db, extension_path, first_line, sql_str


class Rewriting:
    """Encryption and compaction, as methods of :class:`~.archive.Archive` (its file, its connection)."""

    @property
    def encrypted(self) -> bool:
        return self._key is not None

    def encrypt(self, key: str) -> None:
        """Encrypt the journal in place with ``key`` (or change the passphrase of an encrypted one)."""
        if not key:
            raise InputError("the passphrase is empty")
        self.compact(key=key)
        self._key = key

    def compact(self, *, key: str | None = None) -> None:
        """Rewrite the journal into a fresh file, so that deleted bytes are really gone.

        ``key`` encrypts the fresh file with a new passphrase; by default it
        keeps the journal's own (or none).
        """
        if self.read_only:
            raise StoreError("cannot rewrite a journal opened read-only")
        new_key = key if key is not None else self._key
        fresh = self.path.with_name(self.path.name + ".compact")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        con = self._con
        try:
            if new_key is not None:
                con.execute(f"LOAD '{extension_path('httpfs')}'")
                con.execute(f"ATTACH '{sql_str(fresh)}' AS fresh (ENCRYPTION_KEY '{sql_str(new_key)}')")
            else:
                con.execute(f"ATTACH '{sql_str(fresh)}' AS fresh")
            con.execute("COPY FROM DATABASE " + current_db(con) + " TO fresh")
            con.execute("DETACH fresh")
        except duckdb.Error as e:
            fresh.unlink(missing_ok=True)
            raise StoreError(f"could not rewrite {self.path}: {first_line(e)}") from None
        os.chmod(fresh, 0o600)
        with open(fresh, "rb") as f:
            os.fsync(f.fileno())
        # From here until the new file is in place no other process may open the old one:
        # a write it made there would be lost with it.
        gate = Gate(self.path)
        if not gate.take(exclusive=True, deadline=time.monotonic() + self.lock_timeout):
            fresh.unlink(missing_ok=True)
            raise StoreError(f"could not rewrite {self.path}: another voice-journal process kept opening it")
        try:
            self.release()
            os.replace(fresh, self.path)  # atomic: the old file, or the new one, never half of each
            self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
            self._key = new_key
        finally:
            gate.leave()
