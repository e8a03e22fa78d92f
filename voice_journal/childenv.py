"""The environment a child process is given: what it needs, and none of the journal's secrets.

A child inherits the whole environment by default, and with it
``VOICE_JOURNAL_PASSPHRASE`` (the key to an encrypted journal) and whatever
tokens the person keeps there. Children are started with one of these instead:

* :func:`minimal` -- an allowlist: where programs and files are (``PATH``,
  ``HOME``, ``TMPDIR``, ``XDG_*``), the language (``LANG``, ``LC_*``), the Python
  it runs in (``VIRTUAL_ENV``, ``PYTHONPATH``), whom TLS trusts, and nothing
  whose name holds PASSPHRASE, PASSWORD, TOKEN, KEY, SECRET or CREDENTIAL.
  For voice-journal's own children (the background summariser).
* :func:`for_pip` -- everything pip may need (proxies, ``PIP_*``, certificates,
  compilers for a source build) less voice-journal's and Ollama's variables.
"""

from __future__ import annotations

import os

_KEEP = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH",
    "SSL_CERT_FILE", "SSL_CERT_DIR",
    "SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "APPDATA", "LOCALAPPDATA", "USERPROFILE",  # Windows
})
_KEEP_PREFIXES = ("LC_", "XDG_")
_SECRET_WORDS = ("PASSPHRASE", "PASSWORD", "PASSWD", "TOKEN", "KEY", "SECRET", "CREDENTIAL")
_NOT_FOR_PIP = ("VOICE_JOURNAL_", "OLLAMA_")


def is_secret(name: str) -> bool:
    """Whether a variable's name says it holds a secret (``GITHUB_TOKEN``, ``OLLAMA_API_KEY``)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def minimal(**extra: str) -> dict[str, str]:
    """The allowlisted part of this process's environment, then ``extra`` (given on purpose, kept as is)."""
    env = {k: v for k, v in os.environ.items()
           if (k.upper() in _KEEP or k.upper().startswith(_KEEP_PREFIXES)) and not is_secret(k)}
    env.update(extra)
    return env


def for_pip() -> dict[str, str]:
    """This process's environment for ``pip install``, without ``VOICE_JOURNAL_*`` (the passphrase) or ``OLLAMA_*``."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(_NOT_FOR_PIP)}
