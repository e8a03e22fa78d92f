"""Latency of a live session, heard through a (virtual) microphone and speaker.

    .venv/bin/python benchmarks/live.py            # the quality defaults (Whisper base, Qwen2.5-Coder 1.5B)
    .venv/bin/python benchmarks/live.py --fast     # tiny.en + SmolLM2

Real speech is played in real time into the virtual microphone of a private
PulseAudio daemon (tests/virtual_audio.py: the stand-in for a person at a
microphone); the session runs as `voice-journal session` runs it, through
sounddevice, and speaks on a separate virtual speaker. Ten or more turns.

Then, in the same run and on the same turns, a sequential baseline built
here does what simple local assistants do: once the turn is over, transcribe
all of it, write the whole reply, synthesise all of it, then play.

Prints, per pipeline: the time from the end of the turn (the segmenter's
decision, ``end_silence_ms`` after the person stopped) to the first reply
audio, p50 and p95, split by stage; and the same from the end of speech.

    .venv/bin/python benchmarks/live.py --soak 20  # one 20-minute session, no baseline

holds one session until its time limit (the turns said again and again),
as a person's 20-minute session would run: whether anything is lost, and
how latency, the prompt cache and memory behave as the dialogue grows.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

import memory_map  # noqa: E402
import virtual_audio  # noqa: E402
from wyoming_servers import serving  # noqa: E402
from pipeline import machine  # noqa: E402
from voice_journal import config  # noqa: E402
from voice_journal.audio import pcm  # noqa: E402
from voice_journal.audio.vad import segment  # noqa: E402
from voice_journal.companion import arc  # noqa: E402
from voice_journal.llm.base import Message  # noqa: E402
from voice_journal.session import CompanionReplied, LiveOptions, LiveSession, load_engines, reply_options  # noqa: E402
from voice_journal.speech.sentences import speakable  # noqa: E402
from voice_journal.speech.stt import LanguagePin  # noqa: E402
from voice_journal.store.archive import Archive  # noqa: E402


def turns_to_say(folder: Path) -> list[Path]:
    """Ten turns: the five LibriVox sentences (real voices), the demo monologue's four turns and
    "front center" (a real voice at 48 kHz), each written as a 16 kHz WAV."""
    clips = [pcm.load(p) for p in sorted((ROOT / "samples" / "librivox").glob("*.flac"))]
    clips += [u.clip for u in segment(pcm.stream(ROOT / "samples" / "demo" / "journal.flac"))]
    clips.append(pcm.load(ROOT / "samples" / "alsa" / "front_center.wav"))
    paths = []
    for i, c in enumerate(clips):
        path = folder / f"turn{i:02d}.wav"
        pcm.write_wav(path, c)
        paths.append(path)
    return paths


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(round(0.95 * len(xs))) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="use the small fast models")
    ap.add_argument("--soak", type=float, metavar="MINUTES", help="one session of this length instead (no baseline)")
    ap.add_argument("--runs", type=int, default=1, metavar="N",
                    help="N sessions, models loaded afresh for each: each run's figures, then the median run in full")
    ap.add_argument("--services", action="store_true",
                    help="speech through the real Wyoming servers on loopback (the same models), not in-process")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs is at least 1")
    console = Console(width=130)
    why = virtual_audio.available()
    if why:
        console.print(f"[yellow]live benchmark skipped: {why}[/yellow]")
        return
    settings = config.load(profile="fast" if args.fast else "quality")
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as services:
        folder = Path(d)
        if args.services:
            # The Home Assistant way: wyoming-faster-whisper and wyoming-piper, here on loopback.
            stt, _ = services.enter_context(serving("stt", folder / "stt", model=settings.stt_model))
            tts, _ = services.enter_context(serving("tts", folder / "tts", model=settings.tts_voice))
            settings = settings.with_(stt=stt, tts=tts)
        va = virtual_audio.VirtualAudio.start(folder / "pulse")
        os.environ["PULSE_SERVER"] = va.env()["PULSE_SERVER"]  # before PortAudio starts
        try:
            if args.soak:
                soak(console, settings, va, turns_to_say(folder), folder, args.soak)
                return
            runs = []
            for n in range(args.runs):
                runs.append(run(settings, va, turns_to_say(folder), folder / f"run{n}"))
                gc.collect()  # the run's models go before the next run loads its own
                if args.runs > 1:
                    console.print(f"run {n + 1} of {args.runs}: {runs[-1].line()}")
        finally:
            va.stop()
    middle = sorted(runs, key=lambda r: r.p50)[(len(runs) - 1) // 2]
    if len(runs) > 1:
        p50s = ", ".join(f"{r.p50:.2f}" for r in runs)
        console.print(f"end of turn -> first reply audio, p50 of each run: {p50s} s; "
                      f"median {statistics.median(r.p50 for r in runs):.2f} s; the median run in full:")
    report(console, settings, middle)


def _models(engines) -> str:
    names = engines.names()
    return f"stt {names['stt']}, llm {names['llm']}, tts {names['tts']}"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def soak(console, settings, va, says: list[Path], folder: Path, minutes: float) -> None:
    """One session until its time limit, the person saying the turns in a loop."""
    from voice_journal.audio.capture import Microphone
    from voice_journal.audio.playback import Speaker

    engines = load_engines(settings)
    archive = Archive.open(folder / "soak.duckdb")
    said = [0]
    rss: list[tuple[float, float]] = []
    maps: list[dict] = []  # smaps at the start, then once a minute: where the memory is
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5.0):
            rss.append((time.perf_counter() - t0, _rss_mb()))
            if len(rss) % 12 == 0:
                maps.append(memory_map.snapshot())

    def on_event(e) -> None:
        if isinstance(e, CompanionReplied):
            path = says[said[0] % len(says)]
            said[0] += 1
            threading.Timer(0.5, lambda: va.say(path)).start()

    session = LiveSession(engines, archive, settings, Microphone(), Speaker(),
                          LiveOptions(max_minutes=minutes), on_event=on_event)
    t0 = time.perf_counter()
    rss.append((0.0, _rss_mb()))
    maps.append(memory_map.snapshot())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = session.run()
    finally:
        stop.set()
    wall = time.perf_counter() - t0
    turns = archive.turns(result.session_id)
    status = archive.session(result.session_id).status
    archive.close()
    engines.close()
    users = [t for t in turns if t.role == "user"]
    replies = [t.timings for t in turns if t.role == "assistant" and t.timings and "end_to_first_audio_s" in t.timings]
    half = len(replies) // 2
    table = Table(title=f"voice-journal {minutes:g}-minute live session · {machine()}", caption=(
        f"models: {_models(engines)} · session {status}, {wall / 60:.1f} min · {said[0]} turns said, "
        f"{len(users)} user turns and {len(turns) - len(users)} replies archived "
        f"({sum(t.partial for t in turns)} partial) · microphone overflows {session.source.overflows}"))
    for col, justify in (("", "left"), ("p50", "right"), ("p95", "right"), ("max", "right")):
        table.add_column(col, justify=justify)

    def row(name, xs, fmt="{:.2f}"):
        return (name, *(fmt.format(v) for v in (statistics.median(xs), p95(xs), max(xs)))) if xs else (name, "-", "-", "-")

    first = [r["end_to_first_audio_s"] for r in replies]
    table.add_row(*row("end of turn -> first audio, s, first half", first[:half]))
    table.add_row(*row("end of turn -> first audio, s, second half", first[half:]))
    table.add_row(*row("prompt tokens", [r["prompt_tokens"] for r in replies if "prompt_tokens" in r], "{:.0f}"))
    table.add_row(*row("prompt tokens not in the cache", [r["prompt_tokens"] - r["cached_tokens"]
                                                          for r in replies if "prompt_tokens" in r], "{:.0f}"))
    table.add_row(*row("resident memory, MB (every 5 s)", [m for _, m in rss], "{:.0f}"))
    console.print(table)
    console.print(f"memory: {rss[0][1]:.0f} MB at the start, {rss[len(rss) // 2][1]:.0f} MB half-way, "
                  f"{rss[-1][1]:.0f} MB at the end")
    memory_table(console, maps)


def memory_table(console, maps: list[dict]) -> None:
    """Where the resident memory is at the start, half-way and at the end, and what grew."""
    if len(maps) < 3:
        return
    start, half, end = maps[0], maps[len(maps) // 2], maps[-1]
    table = Table(title="resident memory by mapping, MB (smaps; file pages are shared with the page cache)")
    for col, justify in (("", "left"), ("start", "right"), ("half-way", "right"), ("end", "right")):
        table.add_column(col, justify=justify)
    for key in ("rss_mb", "anon_mb", "file_mb"):
        table.add_row(key.removesuffix("_mb"), *(f"{memory_map.totals(m)[key]:.0f}" for m in (start, half, end)))
    halfway = memory_map.by_label(half)
    big = [r for r in memory_map.grew(start, end) if max(r[1], r[2]) >= 10]
    for label, a, b in sorted(big, key=lambda r: r[2], reverse=True)[:14]:
        table.add_row(f"  {escape(label)}", f"{a:.0f}", f"{halfway.get(label, 0.0):.0f}", f"{b:.0f}")
    console.print(table)


@dataclass(frozen=True)
class Measured:
    """One run's figures (the models themselves are not kept: the next run loads its own)."""

    models: str
    load_s: float
    users: list
    replies: list[dict[str, float]]
    baseline: list[dict[str, float]]
    overflows: int
    words: list[int]

    @property
    def p50(self) -> float:
        return statistics.median(r["end_to_first_audio_s"] for r in self.replies if "end_to_first_audio_s" in r)

    def line(self) -> str:
        first = [r["end_to_first_audio_s"] for r in self.replies if "end_to_first_audio_s" in r]
        base = statistics.median(b["first_audio"] for b in self.baseline)
        again = sum(bool(r.get("asked_again")) for r in self.replies)
        return (f"end of turn -> first reply audio p50 {self.p50:.2f} s, p95 {p95(first):.2f} s; "
                f"sequential baseline p50 {base:.2f} s; asked again {again} of {len(self.replies)}")


def run(settings, va, says: list[Path], folder: Path) -> Measured:
    from voice_journal.audio.capture import Microphone
    from voice_journal.audio.playback import Speaker

    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    engines = load_engines(settings)
    load_s = time.perf_counter() - t
    archive = Archive.open(folder / "bench.duckdb")
    queue = list(says)

    def on_event(e) -> None:
        # The person speaks once the companion has finished (greeting, then each reply).
        if isinstance(e, CompanionReplied) and queue:
            path = queue.pop(0)
            threading.Timer(0.5, lambda: va.say(path)).start()

    session = LiveSession(engines, archive, settings, Microphone(), Speaker(),
                          LiveOptions(max_turns=len(says), max_minutes=60), on_event=on_event)
    result = session.run()
    turns = archive.turns(result.session_id, with_audio=True)
    archive.close()
    users = [t for t in turns if t.role == "user"]
    replies = [t.timings for t in turns if t.role == "assistant" and t.timings]

    # The sequential baseline, on the same turns' audio as the microphone captured it.
    baseline: list[dict[str, float]] = []
    history = [Message("system", session.dialog.system), Message("assistant", arc.GREETING)]
    pin = LanguagePin(settings.language)  # the same language handling, so that only the pipelining differs
    for u in users:
        clip = pcm.from_flac(u.audio_flac)
        t0 = time.perf_counter()
        transcript = engines.transcriber.transcribe(clip, pin.language)
        pin.learn(transcript)
        text = transcript.text
        t1 = time.perf_counter()
        history.append(Message("user", text))
        reply = engines.llm.stream(history, reply_options(settings)).text().strip()
        t2 = time.perf_counter()
        audio = [s.samples for s in engines.voice.speak(speakable(reply))]
        t3 = time.perf_counter()
        history.append(Message("assistant", reply))
        baseline.append({"stt": t1 - t0, "llm": t2 - t1, "tts": t3 - t2, "first_audio": t3 - t0,
                         "audio_s": sum(len(a) for a in audio) / engines.voice.rate, "words": len(reply.split())})
    words = [len(t.text.split()) for t in turns if t.role == "assistant" and t.timings]
    measured = Measured(_models(engines), load_s, users, replies, baseline, session.source.overflows, words)
    engines.close()
    return measured


def report(console, settings, m: Measured) -> None:
    users, replies, baseline, words = m.users, m.replies, m.baseline, m.words
    hangover = settings.end_silence_ms / 1000
    first = [r["end_to_first_audio_s"] for r in replies if "end_to_first_audio_s" in r]
    stt_wait = [u.timings["stt_wait_s"] for u in users]
    early = sum(u.timings.get("early_stt", 0) for u in users)
    llm_first = [r["llm_first_sentence_s"] - w for r, w in zip(replies, stt_wait) if "llm_first_sentence_s" in r]
    tts_first = [r["tts_first_s"] for r in replies if "tts_first_s" in r]
    base_first = [b["first_audio"] for b in baseline]

    def row(name, xs, note=""):
        return name, f"{statistics.median(xs):.2f}", f"{p95(xs):.2f}", note

    table = Table(title=f"voice-journal live latency · {machine()}", caption=(
        f"models: {m.models} · {len(users)} turns of real speech "
        f"through a PulseAudio virtual microphone and speaker · end-of-turn silence {hangover:.1f} s · "
        f"model load {m.load_s:.1f} s · microphone overflows {m.overflows}"))
    for col, justify in (("", "left"), ("p50 s", "right"), ("p95 s", "right"), ("", "left")):
        table.add_column(col, justify=justify)
    table.add_row("[bold]this pipeline[/bold]", "", "", "")
    table.add_row(*row("  end of turn -> first reply audio", first, "the target: p50 <= 1.0 s"))
    table.add_row(*row("  end of speech -> first reply audio", [f + hangover for f in first]))
    table.add_row(*row("    STT still running at end of turn", stt_wait,
                       f"all words transcribed in pauses for {early:.0f} of {len(users)} turns"))
    before_llm = [r["before_llm_s"] for r in replies if "before_llm_s" in r]
    if before_llm:
        table.add_row(*row("    before the model is asked (after STT)", [b - w for b, w in zip(before_llm, stt_wait)],
                           "safety check, memory recall (the turn is archived after the request)"))
    table.add_row(*row("    LLM to first sentence (after STT)", llm_first))
    again = [r["end_to_first_audio_s"] for r in replies if r.get("asked_again") and "end_to_first_audio_s" in r]
    if again:
        table.add_row(*row("      replies asked again, led in (end of turn -> audio)", again,
                           f"{len(again)} of {len(replies)}: nothing it first wrote named what they said"))
    early_words = [r["early_words"] for r in replies if "early_words" in r]
    table.add_row(*row("      words written in the pause (replies begun there)", early_words or [0],
                       f"{len(early_words)} of {len(replies)} replies begun in the pause that ended the turn"))
    first_token = [r["llm_first_token_s"] for r in replies if "llm_first_token_s" in r]
    if first_token:  # a warm still running when the turn ends holds the model: this includes that wait
        table.add_row(*row("      first token (after the request)", first_token))
    fresh = [r["prompt_tokens"] - r["cached_tokens"] for r in replies if "prompt_tokens" in r]
    if fresh:
        prompt = [r["prompt_tokens"] for r in replies if "prompt_tokens" in r]
        table.add_row(*row("      prompt tokens not in the cache", fresh,
                           f"of {statistics.median(prompt):.0f} (p50): the rest was evaluated during pauses"))
    table.add_row(*row("    TTS of the first sentence", tts_first))
    pieces = [u.timings.get("stt_pieces", 0) for u in users]
    table.add_row(*row("  reply length, words", words,
                       f"turns transcribed in pieces at pauses: {statistics.mean(pieces):.1f} pieces a turn"))
    table.add_row("[bold]sequential baseline[/bold]", "", "", "")
    table.add_row(*row("  end of turn -> first reply audio", base_first))
    table.add_row(*row("    STT, whole turn", [b["stt"] for b in baseline]))
    table.add_row(*row("    LLM, whole reply", [b["llm"] for b in baseline]))
    table.add_row(*row("    TTS, whole reply", [b["tts"] for b in baseline]))
    table.add_row(*row("  reply length, words", [b["words"] for b in baseline]))
    table.add_row("[bold]speed-up (p50)[/bold]", f"{statistics.median(base_first) / statistics.median(first):.1f}x", "",
                  "the target: >= 3x")
    console.print(table)


if __name__ == "__main__":
    main()
