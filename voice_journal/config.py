"""Settings: defaults, then a TOML file, then environment, then CLI flags.

The config file lives at ``~/.config/voice-journal/config.toml`` (XDG; the
``VOICE_JOURNAL_CONFIG`` variable names another). Every field can also be set
as ``VOICE_JOURNAL_<FIELD>`` (``VOICE_JOURNAL_DB=/tmp/j.duckdb``). Model
fields take a registry name (``voice-journal models``) or a path to your own
model; ``ollama_model`` takes any name your Ollama server knows.

``profile = "fast"`` swaps the defaults for the small models the tests use.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import InputError

PROFILES = {
    "quality": {"stt_model": "whisper-base", "llm_model": "qwen2.5-coder-1.5b", "tts_voice": "joe-medium"},
    "fast": {"stt_model": "whisper-tiny.en", "llm_model": "smollm2-135m", "tts_voice": "joe-medium"},
}


def default_db() -> Path:
    return Path(platformdirs.user_data_dir("voice-journal")) / "journal.duckdb"


def config_path() -> Path:
    env = os.environ.get("VOICE_JOURNAL_CONFIG")
    return Path(env) if env else Path(platformdirs.user_config_dir("voice-journal")) / "config.toml"


@dataclass(frozen=True)
class Settings:
    profile: str = "quality"
    db: Path = dataclasses.field(default_factory=default_db)
    backend: str = "auto"  # auto, ollama or embedded
    ollama_host: str = "http://127.0.0.1:11434"
    ollama_model: str = "qwen2.5:1.5b"
    # A proxy for Ollama (http://HOST:PORT). The proxy variables of the environment (HTTP_PROXY,
    # ALL_PROXY, ...) are ignored: journal text goes through a proxy only when it is named here.
    ollama_proxy: str = ""
    llm_model: str = PROFILES["quality"]["llm_model"]
    stt_model: str = PROFILES["quality"]["stt_model"]
    tts_voice: str = PROFILES["quality"]["tts_voice"]
    # Speech on another machine: "wyoming://host:10300" (wyoming-faster-whisper) and
    # "wyoming://host:10200" (wyoming-piper). "" = the local stt_model and tts_voice, which
    # also take over, for the rest of a session, when a service is down or goes away.
    stt: str = ""
    tts: str = ""
    speech_timeout_s: float = 10.0  # a service silent this long counts as down
    language: str = ""  # "" detects; "en", "de", ... forces
    end_silence_ms: int = 1000
    max_turn_s: float = 90.0
    reply_tokens: int = 120  # the longest reply, in tokens (about 60 spoken words)
    threads: int = 0  # 0: as many as the machine has, up to 4
    encrypt: bool = False  # create new journals encrypted (asks for a passphrase)
    locale: str = ""  # "en-US", "en-GB", ...: whose crisis helplines to give; "" reads LC_ALL/LANG
    # Ask the companion's model about turns the crisis net is unsure of. Off: the default models
    # judge poorly (Qwen2.5-Coder-1.5B called 6 of 30 crises a crisis, ~5 s each); for a better one.
    safety_judge: bool = False
    safety_judge_timeout_s: float = 3.0  # no verdict by then: the turn is treated as a crisis
    memory: bool = True  # the companion may recall related past turns (they never leave the machine)
    mood_check: bool = False  # ask for a 1-10 mood rating at the start and the end of a live session
    summaries: bool = True  # after a session, summarise it (themes, estimated mood) in the background
    gentle_notes: bool = True  # a note at the start when journaling may be turning into rumination
    web_port: int = 8765  # `voice-journal serve`: the page's port on 127.0.0.1
    web_token: str = ""  # `voice-journal serve`: the page's access token ("" = a new random one each start)

    def with_(self, **changes) -> "Settings":
        clean = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **clean)


def _coerce(name: str, value):
    field_type = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    try:
        if field_type in ("bool", bool):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if field_type in ("int", int):
            return int(value)
        if field_type in ("float", float):
            return float(value)
        if field_type in ("Path", Path):
            return Path(str(value)).expanduser()
        return str(value)
    except ValueError:
        raise InputError(f"setting {name} must be a {field_type}, not {value!r}") from None


def load(**overrides) -> Settings:
    """The settings in force: defaults < config file < environment < ``overrides``."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    values: dict = {}
    path = config_path()
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the config file {path}: {e}") from None
        unknown = set(raw) - fields
        if unknown:
            raise InputError(f"{path}: unknown settings {', '.join(sorted(unknown))}")
        values.update(raw)
    if "OLLAMA_HOST" in os.environ:
        values["ollama_host"] = os.environ["OLLAMA_HOST"]
    for name in fields:
        env = os.environ.get(f"VOICE_JOURNAL_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    profile = str(values.get("profile", "quality"))
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; choose {' or '.join(PROFILES)}")
    merged = {**PROFILES[profile], **values}
    return Settings(**{k: _coerce(k, v) for k, v in merged.items()})
