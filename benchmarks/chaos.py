"""Background work under pressure: a burst of entries, and kill -9 at random moments.

    .venv/bin/python benchmarks/chaos.py                 # both parts (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/chaos.py --part burst    # (a) only
    .venv/bin/python benchmarks/chaos.py --part kill --kills 30

(a) **burst**: 50 entries written in a row with ``voice-journal write`` on
a fresh journal, with summaries on and the default model, while this
script searches the journal once a second (opening it as ``search`` does)
and samples, every 0.2 s, the summariser processes alive and the resident
memory of every voice-journal process together. It then waits for the
queue to drain and counts the summaries.

(b) **kill**: a file session (fast models) and the background summariser
(the default model) are each killed with SIGKILL at random moments, in
turn. After each kill: every turn the session reported ("You ...",
"Companion ...") is in the journal, the journal opens, the queue holds
exactly the sessions without a summary, and no session has two.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline import machine  # noqa: E402
from voice_journal import background  # noqa: E402
from voice_journal.store import search  # noqa: E402
from voice_journal.store.archive import Archive  # noqa: E402
from voice_journal.store.embedding import Embedder  # noqa: E402

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "VOICE_JOURNAL_SUMMARIES": "true", "VOICE_JOURNAL_BACKEND": "embedded",
       "VOICE_JOURNAL_LLM_MODEL": "qwen2.5-coder-1.5b", "VOICE_JOURNAL_GENTLE_NOTES": "false", "COLUMNS": "200"}

SHORT = ["slept badly again, the neighbours were loud until two", "walked to the river at lunch, felt lighter",
         "call with mum went better than i expected", "the deadline moved again and i am so tired of it",
         "made soup and ate it by the window watching the rain", "um i dont know, flat today, nothing much",
         "ran five k for the first time since the injury", "argued with sam about the dishes, silly really",
         "the interview is tomorrow and my stomach is in knots", "finished the book, cried at the end",
         "garden is finally coming back after the frost", "felt lonely in the evening, texted an old friend",
         "therapy was hard today, we talked about dad", "quiet sunday, coffee, crossword, nap",
         "my manager thanked me in the meeting, felt seen", "cant stop scrolling at night, need to stop"]
LONG = ("Today was one of those days where everything piled up. In the morning the train was late and I missed "
        "the start of the meeting, then my manager asked about the report I had not finished, and by the "
        "afternoon I had a headache that would not go away. I called my sister on the way home and that helped "
        "a little, she always knows how to make me laugh about it. Tonight I just want to sleep and start again.")


def entries(n: int) -> list[str]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        out.append(LONG if i % 5 == 4 else rng.choice(SHORT) + (f", day {i}" if rng.random() < 0.3 else ""))
    return out


def _procs() -> list[tuple[int, list[bytes]]]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append((int(pid), f.read().split(b"\0")))
            except OSError:
                pass
    return found


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _workers(db: Path) -> list[int]:
    return [pid for pid, argv in _procs() if b"--worker" in argv and str(db).encode() in argv and _rss_mb(pid)]


class Sampler(threading.Thread):
    """Every 0.2 s: how many summarisers are alive, and the RSS of every voice-journal process together."""

    def __init__(self, db: Path):
        super().__init__(daemon=True)
        self.db, self.stop = db, threading.Event()
        self.max_workers, self.peak_rss_mb = 0, 0.0

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            self.max_workers = max(self.max_workers, len(_workers(self.db)))
            rss = sum(_rss_mb(pid) for pid, argv in _procs() if pid != me and b"voice_journal" in argv)
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
            self.stop.wait(0.2)


class Searcher(threading.Thread):
    """Once a second, what `voice-journal search` does: open the journal, search, let go."""

    def __init__(self, db: Path, embedder: Embedder):
        super().__init__(daemon=True)
        self.db, self.embedder, self.stop = db, embedder, threading.Event()
        self.took: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        queries = ["tired", "sister", "rain", "meeting at work", "sleep"]
        i = 0
        while not self.stop.is_set():
            t = time.perf_counter()
            try:
                with Archive.open(self.db, read_only=True) as a:
                    search.search(a, queries[i % len(queries)], embedder=self.embedder, limit=5)
                self.took.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - a benchmark counts every failure
                if "no journal" not in str(e):
                    self.errors.append(str(e).splitlines()[0])
            i += 1
            self.stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))


def burst(n: int, folder: Path) -> dict:
    db = folder / "burst.duckdb"
    embedder = Embedder.load()
    sampler, searcher = Sampler(db), Searcher(db, embedder)
    sampler.start()
    searcher.start()
    writes = []
    t0 = time.perf_counter()
    for text in entries(n):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "voice_journal", "write", text, "--db", str(db)], env=ENV,
                           capture_output=True, text=True, cwd=ROOT)
        writes.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"write failed: {r.stderr.strip()}")
    wrote = time.perf_counter() - t0
    while _workers(db):
        time.sleep(0.5)
    drained = time.perf_counter() - t0
    sampler.stop.set()
    searcher.stop.set()
    sampler.join()
    searcher.join()
    with Archive.open(db) as a:
        summaries = a.summaries()
        left = a.summaries_due()
    return {"entries": n, "max_workers": sampler.max_workers, "peak_rss_mb": sampler.peak_rss_mb,
            "searches": len(searcher.took), "search_p50": statistics.median(searcher.took),
            "search_max": max(searcher.took), "search_errors": searcher.errors,
            "write_p50": statistics.median(writes), "write_max": max(writes), "wrote_s": wrote,
            "drained_s": drained, "summarised": len(summaries),
            "without_model": sum(1 for s in summaries if s.model == "none"), "left": len(left),
            "state": background.last_state(db)}


def _reported(stdout: str) -> int:
    return sum(1 for line in stdout.splitlines() if line.startswith(("You ", "Companion ")))


def kill(rounds: int, folder: Path) -> dict:
    db = folder / "kill.duckdb"
    rng = random.Random(11)
    audio = ROOT / "samples" / "demo" / "journal.flac"
    env = {**ENV, "VOICE_JOURNAL_SUMMARIES": "false"}  # the worker is started, and killed, by this script
    problems: list[str] = []
    lost = checked = 0
    for i in range(rounds):
        if i % 2 == 0:  # a file session, killed mid-way
            child = subprocess.Popen([sys.executable, "-m", "voice_journal", "session", "--input", str(audio),
                                      "--fast", "--db", str(db)], env=env, cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        else:  # the summariser, killed mid-way
            child = subprocess.Popen([sys.executable, "-m", "voice_journal", "summarize", "--worker", "--db",
                                      str(db)], env=ENV, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(rng.uniform(1.0, 25.0))
        child.send_signal(signal.SIGKILL)
        out = child.communicate()[0]
        try:
            with Archive.open(db) as a:
                rows = a.sessions()
                if i % 2 == 0 and rows:
                    newest = rows[0]
                    have = len(a.turns(newest.id))
                    want = _reported(out)
                    checked += want
                    if have < want:
                        lost += want - have
                        problems.append(f"round {i}: session {newest.id} reported {want} turns, holds {have}")
                queued = {d.session_id for d in a.summaries_due()}
                done = a.execute("SELECT session_id, count(*) FROM summaries GROUP BY ALL").fetchall()
                if any(c > 1 for _, c in done):
                    problems.append(f"round {i}: a session has two summaries")
                with_words = {s.id for s in rows if s.user_turns}
                if queued & {sid for sid, _ in done}:
                    problems.append(f"round {i}: a summarised session is still queued")
                if with_words - queued - {sid for sid, _ in done}:
                    problems.append(f"round {i}: a session is neither queued nor summarised")
        except Exception as e:  # noqa: BLE001
            problems.append(f"round {i}: the journal did not open: {e}")
    # Finally the queue drains, each session once.
    subprocess.run([sys.executable, "-m", "voice_journal", "summarize", "--now", "--db", str(db)], env=ENV,
                   cwd=ROOT, capture_output=True)
    with Archive.open(db) as a:
        sessions = len(a.sessions())
        left = len(a.summaries_due())
        twice = a.execute("SELECT count(*) FROM (SELECT session_id FROM summaries GROUP BY 1 HAVING count(*) > 1)"
                          ).fetchone()[0]
    return {"rounds": rounds, "turns_reported": checked, "turns_lost": lost, "problems": problems,
            "sessions": sessions, "left_after_drain": left, "twice": twice}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["burst", "kill", "both"], default="both")
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--kills", type=int, default=30)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("burst", "both"):
            b = burst(args.entries, Path(tmp))
            t = Table(title=f"(a) {b['entries']} entries written in a row, searching every second · {machine()}")
            t.add_column("measure")
            t.add_column("value", justify="right")
            t.add_row("summarisers alive at once (most)", str(b["max_workers"]))
            t.add_row("peak RSS, all voice-journal processes", f"{b['peak_rss_mb']:,.0f} MB")
            t.add_row(f"search, p50 / slowest ({b['searches']} searches)",
                      f"{b['search_p50']:.2f} / {b['search_max']:.2f} s")
            t.add_row("search errors", str(len(b["search_errors"])))
            t.add_row("write command, p50 / slowest", f"{b['write_p50']:.2f} / {b['write_max']:.2f} s")
            t.add_row("all written after", f"{b['wrote_s']:.0f} s")
            t.add_row("queue drained after", f"{b['drained_s']:.0f} s")
            t.add_row("summarised (of which without the model)", f"{b['summarised']} ({b['without_model']})")
            t.add_row("left in the queue", str(b["left"]))
            console.print(t)
            for e in b["search_errors"][:5]:
                console.print(f"  search error: {e}")
            if b["state"] is not None and b["state"].error:
                console.print(f"  summariser: {b['state'].error}")
        if args.part in ("kill", "both"):
            k = kill(args.kills, Path(tmp))
            t = Table(title=f"(b) SIGKILL at {k['rounds']} random moments, session and summariser in turn · {machine()}")
            t.add_column("measure")
            t.add_column("value", justify="right")
            t.add_row("turns reported committed / lost", f"{k['turns_reported']} / {k['turns_lost']}")
            t.add_row("problems found after a kill", str(len(k["problems"])))
            t.add_row("sessions / left in the queue after draining", f"{k['sessions']} / {k['left_after_drain']}")
            t.add_row("sessions with two summaries", str(k["twice"]))
            console.print(t)
            for p in k["problems"][:10]:
                console.print(f"  {p}")


if __name__ == "__main__":
    main()
