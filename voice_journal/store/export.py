"""Export the journal: Markdown that opens well in Obsidian, or JSON with everything.

Markdown: one file per session, ``YYYY-MM-DD-HHMM-session-N.md``, with YAML
front matter (date, mode, session, language, models, themes, mood) and then
the summary, the structured answers (a check-in's fields) and the dialogue. With audio, each turn's recording is written beside it as FLAC and
embedded (``![[...]]``) under its turn.

Every file is written readable by its owner only (0600, also over a file that
was there with a wider mode), and a folder the export creates is 0700.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .. import private_files
from ..errors import InputError
from .archive import Answer, Archive, SessionRow, Summary, TurnRecord


def _iso(t: dt.datetime | None) -> str | None:
    return t.replace(tzinfo=dt.timezone.utc).isoformat().replace("+00:00", "Z") if t else None


def _stem(s: SessionRow) -> str:
    local = s.started_at.replace(tzinfo=dt.timezone.utc).astimezone()
    return f"{local:%Y-%m-%d-%H%M}-session-{s.id}"


def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _moods(answers: list[Answer]) -> dict[str, float]:
    return {a.field: a.value for a in answers if a.mode == "mood" and a.value is not None}


def _markdown(s: SessionRow, turns: list[TurnRecord], audio_names: dict[int, str], summary: Summary | None,
              answers: list[Answer]) -> str:
    local = s.started_at.replace(tzinfo=dt.timezone.utc).astimezone()
    moods = _moods(answers)
    lines = [
        "---",
        f"date: {local.isoformat(timespec='minutes')}",
        f"mode: {_yaml_str(s.mode)}",
        f"session: {s.id}",
        f"status: {s.status}",
        f"language: {_yaml_str(s.language or '')}",
        f"source: {_yaml_str(s.source or '')}",
        "models: " + json.dumps(s.models, ensure_ascii=False),
        "themes: " + json.dumps(list(summary.themes) if summary else [], ensure_ascii=False),
        *(f"mood_{k}: {v:g}" for k, v in sorted(moods.items())),
        *([f"mood_estimate: {summary.mood:g}"] if summary and summary.mood is not None else []),
        "tags: [journal]",
        "---",
        "",
        f"# Journal, {local:%A %d %B %Y, %H:%M}",
        "",
    ]
    if summary:
        lines += [f"> {summary.summary}", ""]
    fields = [a for a in answers if a.mode != "mood"]
    if fields:
        lines += [f"- **{a.mode} · {a.field}**: {a.text}" for a in fields] + [""]
    for t in turns:
        clock = t.at.replace(tzinfo=dt.timezone.utc).astimezone().strftime("%H:%M")
        who = "**Me**" if t.role == "user" else "**Companion**"
        cut = " *(cut short)*" if t.partial else ""
        lines.append(f"{who} ({clock}){cut}: {t.text}")
        if t.idx in audio_names:
            lines.append(f"![[{audio_names[t.idx]}]]")
        lines.append("")
    return "\n".join(lines)


def export(archive: Archive, folder: Path, *, fmt: str = "md", audio: bool = False) -> list[Path]:
    """Write every session to ``folder``; return the files written."""
    if fmt not in ("md", "json"):
        raise InputError(f"unknown export format {fmt!r}: md or json")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder")
    try:
        private_files.private_dir(folder)
    except OSError as e:
        raise InputError(f"cannot create {folder}: {e.strerror or e}") from None
    written: list[Path] = []
    everything = []
    summaries = {m.session_id: m for m in archive.summaries()}
    for s in sorted(archive.sessions(), key=lambda s: (s.started_at, s.id)):
        turns = archive.turns(s.id, with_audio=audio)
        answers = archive.answers(s.id)
        summary = summaries.get(s.id)
        audio_names: dict[int, str] = {}
        if audio:
            for t in turns:
                if t.audio_flac:
                    name = f"{_stem(s)}-turn-{t.idx}.flac"
                    _write(folder / name, t.audio_flac)
                    audio_names[t.idx] = name
                    written.append(folder / name)
        if fmt == "md":
            path = folder / f"{_stem(s)}.md"
            _write(path, _markdown(s, turns, audio_names, summary, answers))
            written.append(path)
        else:
            everything.append({
                "session": s.id, "started": _iso(s.started_at), "ended": _iso(s.ended_at), "status": s.status,
                "mode": s.mode, "source": s.source, "models": s.models, "language": s.language,
                "summary": {"text": summary.summary, "themes": list(summary.themes), "mood": summary.mood,
                            "model": summary.model} if summary else None,
                "answers": [{"turn": a.idx, "mode": a.mode, "field": a.field, "text": a.text, "value": a.value}
                            for a in answers],
                "turns": [{"turn": t.idx, "role": t.role, "at": _iso(t.at), "text": t.text, "start": t.start_s,
                           "end": t.end_s, "duration": t.duration_s, "language": t.language,
                           "confidence": t.confidence, "timings": t.timings, "model": t.model, "voice": t.voice,
                           "partial": t.partial,
                           "safety": t.safety, "safety_reasons": list(t.safety_reasons),
                           "recalled": list(t.recalled), "audio": audio_names.get(t.idx)} for t in turns],
            })
    if fmt == "json":
        path = folder / "journal.json"
        _write(path, json.dumps(everything, ensure_ascii=False, indent=2))
        written.append(path)
    return written


def _write(path: Path, data: str | bytes) -> None:
    """One file of the export, user-only; a failure is one line naming the file."""
    try:
        if isinstance(data, bytes):
            private_files.write_bytes(path, data)
        else:
            private_files.write_text(path, data)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
