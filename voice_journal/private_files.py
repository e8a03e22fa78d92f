"""Files and folders only their owner can read: every journal file voice-journal writes.

The CLI sets ``umask 077``, but a umask only shapes files that are *created*:
a file that was already there (an export written again, a reply WAV named
twice, a chart drawn over last week's) keeps its old, perhaps 0644, mode. So a
file is opened here with mode 0600 from its first byte and then ``fchmod``-ed
to 0600, which also narrows one that was already there; a folder that is
created is 0700. These hold for library callers too, whatever their umask.

Model caches are not journal data and do not use this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def open_private(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> IO:
    """Open ``path`` for writing, emptied, readable and writable by its owner only (0600).

    ``mode`` is ``"wb"`` (binary) or ``"w"`` (text; ``encoding=`` and the like go
    to :func:`open`). Raises :class:`OSError` as :func:`open` does.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"open_private writes a file anew: mode 'w' or 'wb', not {mode!r}")
    fd = os.open(path, _FLAGS, FILE_MODE)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)  # a file that was already there keeps no wider mode
        else:  # pragma: no cover - Windows has no fchmod (and no group or other bits to clear)
            os.chmod(path, FILE_MODE)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """``Path.write_bytes``, user-only."""
    with open_private(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """``Path.write_text``, user-only."""
    with open_private(path, "w", encoding=encoding) as f:
        f.write(text)


def private_dir(path: str | os.PathLike) -> Path:
    """Make sure the folder ``path`` exists; each folder created for it (parents too) is 0700.

    A folder that was already there keeps its mode: it is the person's (an
    Obsidian vault, their home).
    """
    path = Path(path)
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made meanwhile by someone else: theirs
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path
