"""Search at journal scale: ingest, index freshness, BM25 / vector / hybrid latency, size.

    .venv/bin/python benchmarks/search.py            # 10k and 100k turns
    .venv/bin/python benchmarks/search.py --sizes 10000

Synthetic journals: sentences drawn from a Zipf-distributed vocabulary of
real journaling words plus pseudo-words, with random unit vectors as their
embeddings (the cost of a cosine does not depend on the content; real
MiniLM embedding is timed separately, per turn, on the real write path).
Size per hour of speech comes from a real session on the demo recording.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import csv

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline import machine  # noqa: E402
from search_corpus import ENTRIES, QUERIES  # noqa: E402
from voice_journal.store import search  # noqa: E402
from voice_journal.store.archive import UID_STRIDE, Archive, TurnRecord  # noqa: E402
from voice_journal.store.embedding import Embedder  # noqa: E402


def vocabulary(rng) -> list[str]:
    real = sorted({w.strip(".,;!?'\"").lower() for e in ENTRIES for w in e.split()} - {""})
    letters = "abcdefghijklmnopqrstuvwxyz"
    fake = {"".join(rng.choice(list(letters), rng.integers(3, 10))) for _ in range(6000)}
    return real + sorted(fake)


def synthetic(n: int, rng, words: list[str]):
    ranks = np.arange(1, len(words) + 1)
    p = 1 / ranks
    p /= p.sum()
    lengths = rng.integers(8, 40, n)
    picks = rng.choice(len(words), size=int(lengths.sum()), p=p)
    texts, at = [], 0
    for length in lengths:
        texts.append(" ".join(words[i] for i in picks[at : at + length]))
        at += length
    vecs = rng.normal(size=(n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return texts, vecs


def build(path: Path, n: int, rng, words) -> float:
    """A journal of n turns in sessions of 20, bulk-loaded through Arrow; returns rows/s."""
    a = Archive.open(path)
    texts, _ = synthetic(n, rng, words)
    sessions = (n + 19) // 20
    start = dt.datetime(2024, 1, 1)
    con = a.connection
    t = time.perf_counter()
    with a.transaction():
        con.execute("INSERT INTO sessions (started_at, ended_at, status, mode, source, models) "
                    "SELECT ?::TIMESTAMP + i * INTERVAL 1 DAY, ?::TIMESTAMP + i * INTERVAL 1 DAY + INTERVAL 20 MINUTE, "
                    "'complete', CASE WHEN i % 3 = 0 THEN 'check-in' ELSE 'free' END, 'bench', '{}' "
                    "FROM range(1, ?) t(i) ORDER BY i", [start, start, sessions + 1])  # ids 1, 2, ... in order
        csv_path = path.with_suffix(".csv")
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["uid", "session_id", "idx", "role", "recorded_at", "text"])
            for k, text in enumerate(texts):
                s, i = k // 20 + 1, k % 20
                w.writerow([s * UID_STRIDE + i, s, i, "user" if i % 2 == 0 else "assistant",
                            (start + dt.timedelta(days=s, minutes=i)).isoformat(sep=" "), text])
        # Random directions stand in for embeddings and their sketches: a cosine costs the
        # same whatever it compares (the sketch's recall is tested in tests/test_search.py).
        con.execute(f"""INSERT INTO turns (uid, session_id, idx, role, recorded_at, text, embedding, sketch)
            SELECT uid, session_id, idx, role, recorded_at, text,
                   list_transform(range(384), x -> (random() - 0.5)::FLOAT)::FLOAT[384],
                   list_transform(range(96), x -> ((random() - 0.5) * 200)::TINYINT)::TINYINT[96]
            FROM read_csv('{csv_path}', header = true, quote = '"', escape = '"',
                          columns = {{'uid': 'BIGINT', 'session_id': 'BIGINT', 'idx': 'INTEGER', 'role': 'VARCHAR',
                                     'recorded_at': 'TIMESTAMP', 'text': 'VARCHAR'}})""")
        csv_path.unlink()
    rate = n / (time.perf_counter() - t)
    a.close()
    return rate


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(round(0.95 * len(xs))) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    words = vocabulary(rng)
    embedder = Embedder.load()
    queries = [q for _, q, _ in QUERIES]
    qvecs = embedder.embed(queries)
    console = Console(width=140)
    table = Table(title=f"voice-journal search · {machine()}")
    for col in ("turns", "bulk ingest rows/s", "index rebuild s", "BM25 p50/p95 ms", "vector p50/p95 ms",
                "hybrid p50/p95 ms", "hybrid, 200 fresh turns p50/p95 ms", "file MB"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            path = Path(d) / f"j{n}.duckdb"
            rate = build(path, n, rng, words)
            a = Archive.open(path)
            rebuild = timed(lambda: search.rebuild_index(a), 1)[0]

            def run(method: str, passes: int = 3) -> list[float]:
                times = []
                for q, v in list(zip(queries, qvecs)) * passes:  # 48 samples: a steadier p95 than 16
                    t = time.perf_counter()
                    if method == "bm25":
                        search.bm25(a, q)
                    elif method == "vector":
                        search.vector(a, v)
                    else:
                        # Hybrid as the CLI runs it, minus the query's embedding (timed below).
                        class Fixed:
                            def embed(self, _):
                                return v[None, :]
                        search.search(a, q, embedder=Fixed())
                    times.append((time.perf_counter() - t) * 1000)
                return times

            run("hybrid", 2)  # warm the caches as a long-lived process would be
            bm, vec, hyb = run("bm25"), run("vector"), run("hybrid")
            texts, vecs = synthetic(200, rng, words)
            sid = a.begin_session()
            for i, (text, v) in enumerate(zip(texts, vecs)):
                a.add_turn(TurnRecord(sid, i, "user", text, embedding=v))
            fresh = run("hybrid")
            a.close()
            size = path.stat().st_size / 1e6
            table.add_row(f"{n:,}", f"{rate:,.0f}", f"{rebuild:.2f}",
                          f"{statistics.median(bm):.0f} / {p95(bm):.0f}", f"{statistics.median(vec):.0f} / {p95(vec):.0f}",
                          f"{statistics.median(hyb):.0f} / {p95(hyb):.0f}",
                          f"{statistics.median(fresh):.0f} / {p95(fresh):.0f}", f"{size:.0f}")
        # The real write path: one turn, embedded and committed on its own.
        a = Archive.open(Path(d) / "real.duckdb")
        sid = a.begin_session()
        per_turn: list[float] = []
        for i, text in enumerate(ENTRIES * 4):
            t = time.perf_counter()
            a.add_turn(TurnRecord(sid, i, "user", text, embedding=embedder.embed([text])[0]))
            per_turn.append(time.perf_counter() - t)
        a.close()
        q_embed = timed(lambda: embedder.embed(["an argument with my sibling"]), 50)
    console.print(table)
    console.print(f"real write path (MiniLM embed + one committed transaction): "
                  f"p50 {statistics.median(per_turn) * 1000:.1f} ms a turn; query embedding p50 "
                  f"{statistics.median(q_embed) * 1000:.1f} ms (add it to hybrid and vector)")


if __name__ == "__main__":
    main()
