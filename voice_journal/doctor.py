"""Checks behind ``voice-journal doctor``: each one a line a person can act on."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from typing import Iterator

from . import models
from .config import Settings


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # ok, warn, fail
    message: str


def run_checks(settings: Settings) -> Iterator[Check]:
    v = sys.version_info
    yield Check("python", "ok" if (v.major, v.minor) == (3, 11) else "warn",
                f"{v.major}.{v.minor}.{v.micro}" + ("" if (v.major, v.minor) == (3, 11) else " (tested on 3.11)"))
    yield from _audio()
    yield from _models(settings)
    yield from _ollama(settings)
    yield from _speech_services(settings)
    yield from _journal(settings)
    yield from _summaries(settings)


def _audio() -> Iterator[Check]:
    try:
        import sounddevice as sd
    except OSError:
        yield Check("portaudio", "warn", "not installed: `sudo apt-get install libportaudio2` for the microphone "
                    "and speaker; --input FILE and --reply-audio FILE work without it")
        return
    yield Check("portaudio", "ok", sd.get_portaudio_version()[1])
    try:
        devices = sd.query_devices()
    except Exception as e:  # PortAudioError
        yield Check("audio devices", "warn", f"cannot list devices ({e})")
        return
    ins = [d["name"] for d in devices if d["max_input_channels"] > 0]
    outs = [d["name"] for d in devices if d["max_output_channels"] > 0]
    if not ins:
        yield Check("microphone", "warn", "no input device found: connect one, or use --input FILE")
    else:
        yield Check("microphone", "ok", f"{len(ins)} input(s), e.g. {ins[0]}")
    if not outs:
        yield Check("speaker", "warn", "no output device found: use --reply-audio FILE to hear replies later")
    else:
        yield Check("speaker", "ok", f"{len(outs)} output(s), e.g. {outs[0]}")


def _models(settings: Settings) -> Iterator[Check]:
    for kind, name in (("stt", settings.stt_model), ("llm", settings.llm_model), ("tts", settings.tts_voice),
                       ("embed", "minilm-l6")):
        label = {"stt": "speech model", "llm": "embedded LLM", "tts": "voice", "embed": "search embeddings"}[kind]
        name = models.canonical(name)
        if name not in models.registry():
            ok = os.path.exists(os.path.expanduser(name))
            yield Check(label, "ok" if ok else "fail", f"{name} ({'your own file' if ok else 'no such path'})")
            continue
        spec = models.spec(name)
        if not spec.installed():
            level = "warn" if kind == "llm" else "fail"
            yield Check(label, level, f"{name} is not installed: `voice-journal models install {name}`")
            continue
        try:
            path = models.resolve(name, kind=kind)
            yield Check(label, "ok", f"{name} ({spec.size / 1e6:,.0f} MB) at {path}")
        except Exception as e:
            yield Check(label, "fail", str(e))


def _ollama(settings: Settings) -> Iterator[Check]:
    from .errors import VoiceJournalError
    from .llm.ollama import OllamaLLM, remote_host_note

    note = remote_host_note(settings.ollama_host, proxy=settings.ollama_proxy)
    if note:
        yield Check("ollama host", "warn", note)
    try:
        llm = OllamaLLM(settings.ollama_model, settings.ollama_host, timeout=3.0, check=False,
                        proxy=settings.ollama_proxy)
        names = llm.models()
    except VoiceJournalError as e:
        level = "fail" if settings.backend == "ollama" else "warn"
        fallback = "" if settings.backend == "ollama" else "; the embedded model answers instead"
        yield Check("ollama", level, f"{e}{fallback}")
        return
    want = settings.ollama_model
    have = want in names or f"{want}:latest" in names
    if have:
        yield Check("ollama", "ok", f"{settings.ollama_host} has {want}")
    else:
        yield Check("ollama", "warn", f"{settings.ollama_host} answers but lacks {want} "
                    f"(has: {', '.join(names) or 'none'}): `ollama pull {want}`")


def _speech_services(settings: Settings) -> Iterator[Check]:
    """Each Wyoming service the settings name: what it has, and how long it takes to say so."""
    from .errors import InputError, SpeechServiceError
    from .speech.wyoming import describe, short_name

    for label, url, local, has in (("speech to text service", settings.stt, settings.stt_model, "asr_models"),
                                   ("text to speech service", settings.tts, settings.tts_voice, "voices")):
        if not url:
            continue
        try:
            info = describe(url, timeout=settings.speech_timeout_s)
        except (InputError, SpeechServiceError) as e:
            yield Check(label, "warn", f"{e}; sessions use the local {local} instead")
            continue
        offered = getattr(info, has)
        if not offered:
            yield Check(label, "warn", f"{info.address} ({', '.join(info.programs) or 'no program'}) offers no "
                                       f"{'speech to text' if has == 'asr_models' else 'voices'}; "
                                       f"sessions use the local {local} instead")
            continue
        shown = ", ".join(short_name(o) for o in offered[:3]) + (f" and {len(offered) - 3} more"
                                                                          if len(offered) > 3 else "")
        yield Check(label, "ok", f"{info.address} ({', '.join(info.programs)}: {shown}), "
                                 f"answered in {info.round_trip_s * 1000:.0f} ms")


def _journal(settings: Settings) -> Iterator[Check]:
    path = settings.db
    folder = path.parent
    if not path.exists():
        probe = folder
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK) or not probe.is_dir():
            yield Check("journal", "fail", f"{path} cannot be created: {probe} is not writable; set --db or `db` in the config")
        else:
            yield Check("journal", "ok", f"{path} will be created on the first session (user-only)")
        return
    problems = []
    if stat.S_IMODE(folder.stat().st_mode) & 0o077:
        problems.append(f"its folder is readable by others: `chmod 700 {folder}`")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        problems.append(f"the file is readable by others: `chmod 600 {path}`")
    if not os.access(path, os.W_OK):
        problems.append("it is not writable")
    size = path.stat().st_size
    if problems:
        yield Check("journal", "warn", f"{path} ({size / 1e6:.1f} MB): " + "; ".join(problems))
    else:
        yield Check("journal", "ok", f"{path} ({size / 1e6:.1f} MB, user-only)")


def _summaries(settings: Settings) -> Iterator[Check]:
    from . import background
    from .errors import VoiceJournalError
    from .store.archive import Archive, PassphraseNeeded

    if not settings.db.exists():
        return
    try:
        with Archive.open(settings.db, read_only=True, lock_timeout=3.0,
                          key=os.environ.get("VOICE_JOURNAL_PASSPHRASE") or None) as archive:
            backlog = background.backlog(archive)
    except PassphraseNeeded:
        pid = background.worker_pid(settings.db)
        yield Check("summaries", "ok", "the journal is encrypted: set VOICE_JOURNAL_PASSPHRASE to count them"
                    + (f"; the background summariser is at work (process {pid})" if pid else ""))
        return
    except VoiceJournalError as e:
        yield Check("summaries", "warn", f"cannot count them: {e}")
        return
    level = "ok"
    line = backlog.line()
    if backlog.due and not os.access(settings.db, os.W_OK):
        level, line = "warn", f"{backlog.due} pending, but the journal is read-only: they stay queued"
    elif backlog.given_up or (backlog.due and not backlog.worker and backlog.last and backlog.last.error):
        level = "warn"
    if not settings.summaries and backlog.due:
        line += " (summaries are off in the settings)"
    yield Check("summaries", level, line)
