"""End of turn -> first reply audio in the browser, beside the same turns in a terminal session.

    .venv/bin/python benchmarks/browser.py            # the small models (tiny.en, SmolLM2)
    .venv/bin/python benchmarks/browser.py --quality  # the defaults (Whisper base, Qwen2.5-Coder 1.5B)

The browser: `voice-journal serve` and Debian's headless Chromium, whose fake
microphone plays a recording (real voices: the LibriVox sentences) with a
long silence after each turn, since a half-duplex companion does not hear
what is said while it answers. The page is driven as a person would: Talk,
Start, then End once every turn was answered. The terminal: the same
recording through `LiveSession` with a paced file and a clocked speaker
(`voice-journal session --input FILE --realtime`), in the same run.

The figure for both is the session's own, archived with each reply:
``end_to_first_audio_s``, from the segmenter's end-of-turn decision to the
first reply audio handed to the speaker (for the browser, sent on the
WebSocket; the page schedules each piece 20 ms after it arrives, at most).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline import machine  # noqa: E402
from served_page import CHROMIUM, DRIVER, MISSING, chromium, fake_microphone, serve  # noqa: E402
from voice_journal import app, config  # noqa: E402
from voice_journal.audio import pcm  # noqa: E402


def recording(folder: Path, gap_s: float) -> tuple[Path, int]:
    """The LibriVox sentences, each followed by ``gap_s`` of silence, as one 16 kHz WAV."""
    clips = [pcm.load(p).samples for p in sorted((ROOT / "samples" / "librivox").glob("*.flac"))]
    parts = [np.zeros(pcm.RATE, np.int16)]
    for c in clips:
        parts += [c, np.zeros(int(gap_s * pcm.RATE), np.int16)]
    path = folder / "turns.wav"
    pcm.write_wav(path, pcm.Clip(np.concatenate(parts)))
    return path, len(clips)


def first_audio(db: Path) -> tuple[list[float], int]:
    """Each reply's end of turn -> first audio in the journal's one session, and the person's turns."""
    with app.open_journal(config.load(db=db), read_only=True) as journal:
        [row] = journal.sessions(5)
        turns = journal.turns(row.id)
    replies = [t.timings.get("end_to_first_audio_s") for t in turns if t.role == "assistant" and t.timings]
    return [r for r in replies if r is not None], sum(t.role == "user" for t in turns)


def in_the_browser(wav: Path, n: int, folder: Path, fast: bool) -> Path:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    db = folder / "browser.duckdb"
    proc, url = serve(db, *(["--fast"] if fast else []))
    try:
        driver = chromium(*fake_microphone(wav))
        try:
            driver.get(url)
            driver.get(url.split("?")[0] + "#/talk")
            WebDriverWait(driver, 30).until(lambda d: d.find_elements("css selector", "#talk-start"))
            driver.find_element("css selector", "#talk-start").click()
            try:  # every turn answered; or the recording is over (a turn said over a slow reply is not heard)
                WebDriverWait(driver, pcm.info(wav).duration + 60).until(
                    lambda d: len(d.find_elements("css selector", "#talk-log .turn.assistant")) >= n + 1
                    or d.find_element("css selector", "#talk-state").get_attribute("data-state") == "error")
            except TimeoutException:
                pass  # reported: "turns heard" is then under the turns said
            driver.find_element("css selector", "#talk-end").click()
            WebDriverWait(driver, 120).until(lambda d: d.find_elements("css selector", "#talk-saved"))
        finally:
            driver.quit()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return db


def in_the_terminal(wav: Path, folder: Path, settings) -> Path:
    from voice_journal.audio.capture import PacedFile
    from voice_journal.audio.playback import ClockedWavSink
    from voice_journal.session import LiveOptions, LiveSession, load_engines

    db = folder / "terminal.duckdb"
    s = config.load(profile=settings.profile, db=db, summaries=False)
    engines = load_engines(s)
    try:
        with app.open_journal(s) as journal:
            LiveSession(engines, journal, s, PacedFile(wav), ClockedWavSink(None), LiveOptions()).run()
    finally:
        engines.close()
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", action="store_true", help="the default models instead of the small ones")
    ap.add_argument("--gap", type=float, default=None, help="seconds of silence after each turn (default 15, 30)")
    args = ap.parse_args()
    console = Console(width=130)
    if not (CHROMIUM and DRIVER):
        console.print(f"[yellow]browser benchmark skipped: {MISSING}[/yellow]")
        return
    settings = config.load(profile="quality" if args.quality else "fast")
    os.environ["VOICE_JOURNAL_SUMMARIES"] = "false"
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        wav, n = recording(folder, args.gap or (30.0 if args.quality else 15.0))
        browser, said_b = first_audio(in_the_browser(wav, n, folder, not args.quality))
        terminal, said_t = first_audio(in_the_terminal(wav, folder, settings))
    table = Table(title=f"End of turn -> first reply audio ({settings.profile} models; {machine()})")
    for col in ("where", "turns heard", "replies", "p50 s", "max s"):
        table.add_column(col)
    for name, xs, said in (("browser (serve + headless Chromium)", browser, said_b),
                           ("terminal (live session, paced file)", terminal, said_t)):
        table.add_row(name, str(said), str(len(xs)), f"{statistics.median(xs):.2f}" if xs else "-",
                      f"{max(xs):.2f}" if xs else "-")
    console.print(table)


if __name__ == "__main__":
    main()
