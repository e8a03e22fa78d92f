"""Opening a journal's DuckDB file: user-only files, one writer at a time, encryption keys.

DuckDB lets one process write a file; another that tries gets a lock error.
:func:`connect` waits for it (saying once who holds it), behind a small
gate that keeps readers out while a rewrite swaps the file (:class:`Gate`).
Extensions load only from the packaged ``duckdb-extensions`` (nothing is
downloaded), and an encrypted journal is attached with its passphrase.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import stat
import time
from pathlib import Path

import duckdb

from ..errors import StoreError
from ..file_lock import FileLock

log = logging.getLogger(__name__)


def interrupted(exc: BaseException) -> bool:
    """Whether DuckDB stopped a statement for Ctrl-C (it takes SIGINT itself while one runs)."""
    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "Query interrupted" in str(exc))


def secure_dir(folder: Path) -> None:
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask


def secure_file(path: Path) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


LOCK_TIMEOUT_S = 15.0  # how long to wait for another voice-journal process to let go


_CONFIG = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


class PassphraseNeeded(StoreError):
    """The journal is encrypted and no passphrase was given."""


def extension_path(name: str) -> str:
    """The packaged DuckDB extension built for exactly this duckdb version (loaded by path: offline)."""
    path = (importlib.resources.files(f"duckdb_extension_{name}") / "extensions" / f"v{duckdb.__version__}"
            / f"{name}.duckdb_extension")
    if not path.is_file():
        raise StoreError(f"the DuckDB {name} extension for duckdb {duckdb.__version__} is not installed: "
                         f"pip install duckdb-extension-{name}=={duckdb.__version__}")
    return str(path)


def spill_dir(path: Path) -> Path:
    """Where DuckDB may spill a large query's data: the journal's own private folder, never ``./.tmp``."""
    return path.with_name(f".{path.name}.tmp")


def _config(path: Path) -> dict[str, str]:
    return {**_CONFIG, "temp_directory": str(spill_dir(path))}


def _open_once(path: Path, read_only: bool, key: str | None) -> duckdb.DuckDBPyConnection:
    if key is None:
        return duckdb.connect(str(path), read_only=read_only, config=_config(path))
    # An encrypted journal is ATTACHed with its key; DuckDB's AES comes with httpfs (OpenSSL).
    con = duckdb.connect(":memory:", config=_config(path))
    try:
        con.execute(f"LOAD '{extension_path('httpfs')}'")
        options = f"ENCRYPTION_KEY '{sql_str(key)}'" + (", READ_ONLY" if read_only else "")
        con.execute(f"ATTACH '{sql_str(path)}' AS journal ({options})")
        con.execute("USE journal")
    except BaseException:
        con.close()
        raise
    return con


class Gate:
    """The lock a whole-file rewrite holds against every voice-journal process that opens the journal.

    Opening takes it shared for the moment of the open; :meth:`Archive.compact`
    takes it exclusively from before it lets go of the old file until the new
    one is in place, so that no process can open (and write into) the old
    file in between. A journal in a folder nobody can write has no gate, and
    needs none: nothing can rewrite it.
    """

    def __init__(self, path: Path):
        self._lock = FileLock(path.with_name(f".{path.name}.gate"))

    def take(self, exclusive: bool, deadline: float) -> bool:
        """Take the gate, waiting until ``deadline``; False if it stayed taken (True where there is none)."""
        try:
            return self._lock.take(exclusive=exclusive, deadline=deadline)
        except OSError:
            return True  # no gate where none can be written (a read-only folder)

    def leave(self) -> None:
        self._lock.release()


class _Waiting:
    """Says once, after a moment, which process a command waits for."""

    AFTER_S = 1.0

    def __init__(self, path: Path):
        self.path = path
        self.since = time.monotonic()
        self.said = False

    def still(self, error: str) -> None:
        if self.said or time.monotonic() - self.since < self.AFTER_S:
            return
        self.said = True
        log.warning("the journal %s is busy (%s); waiting for it", self.path, holder(error))


def holder(error: str) -> str:
    """Who holds the journal, from DuckDB's lock error ("... held in /usr/bin/python3 (PID 123)")."""
    m = re.search(r"\(PID (\d+)\)", error)
    if not m:
        return "another voice-journal process holds it"
    pid = int(m.group(1))
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return f"process {pid} holds it"
    what = " ".join(a for a in argv[argv.index("voice_journal") + 1:][:2] if not a.startswith("-")) \
        if "voice_journal" in argv else ""
    if not what and argv and argv[0].endswith("voice-journal") and len(argv) > 1:
        what = argv[1]
    return f"process {pid}" + (f", voice-journal {what}," if what else "") + " holds it"


def connect(path: Path, read_only: bool, lock_timeout: float, key: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process holds it.

    DuckDB lets one process hold a file for writing and no process read it
    meanwhile. voice-journal processes hold it only for moments (a turn's
    commit, one search, a summary's store), so a short wait is all a clash
    costs; after a second of it a warning names the process waited for.
    """
    deadline = time.monotonic() + lock_timeout
    waiting = _Waiting(path)
    delay = 0.02
    while True:
        gate = Gate(path)
        if not gate.take(exclusive=False, deadline=deadline):
            raise StoreError(f"the journal {path} is being rewritten by another voice-journal process; "
                             "try again when it ends")
        old_umask = os.umask(0o077)  # DuckDB creates the file (and its WAL) itself
        try:
            return _open_once(path, read_only, key)
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() >= deadline:
                raise StoreError(_io_message(path, e)) from None
            waiting.still(str(e))
        except duckdb.Error as e:
            text = str(e)
            if "without a key" in text or ("encrypted" in text and key is None):
                raise PassphraseNeeded(f"the journal {path} is encrypted: give its passphrase "
                                       "(VOICE_JOURNAL_PASSPHRASE, or run in a terminal to be asked)") from None
            if "Wrong encryption key" in text:
                raise StoreError(f"wrong passphrase for the journal {path}") from None
            # An encrypted ATTACH's lock clash; or this process's own writer holding the file for a moment
            # (the page reading while a session it serves commits a turn): wait for it as for another process.
            if ("lock" in text.lower() or "different configuration" in text) and time.monotonic() < deadline:
                waiting.still(text)
            else:
                raise StoreError(f"cannot open the journal {path}: {first_line(e)}") from None
        finally:
            os.umask(old_umask)
            gate.leave()
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def current_db(con: duckdb.DuckDBPyConnection) -> str:
    return '"' + con.execute("SELECT current_database()").fetchone()[0].replace('"', '""') + '"'


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _io_message(path: Path, e: duckdb.Error) -> str:
    text = str(e)
    if "lock" in text.lower():
        return f"the journal {path} is in use by another voice-journal process; try again when it ends"
    if "permission" in text.lower() or "read-only" in text.lower():
        return f"cannot write the journal {path}: permission denied"
    return f"cannot open the journal {path}: {first_line(e)}"
