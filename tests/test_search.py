"""Hybrid search: relevance on a labelled journal, freshness, filters, odd queries."""

import datetime as dt
import math

import numpy as np
import pytest

from search_corpus import ENTRIES, QUERIES
from voice_journal.store import search
from voice_journal.store.archive import Archive, TurnRecord
from voice_journal.store.embedding import sketch


@pytest.fixture(scope="module")
def journal(tmp_path_factory, embedder):
    path = tmp_path_factory.mktemp("search") / "j.duckdb"
    a = Archive.open(path)
    vecs = embedder.embed(ENTRIES)
    start = dt.datetime(2026, 1, 1, 9, 0)
    for i, (text, v) in enumerate(zip(ENTRIES, vecs)):
        # One session per entry, one per day, alternating modes.
        sid = a.begin_session(mode="free" if i % 2 == 0 else "check-in", started_at=start + dt.timedelta(days=i))
        a.add_turn(TurnRecord(sid, 0, "user", text, at=start + dt.timedelta(days=i, minutes=1), embedding=v))
        a.add_turn(TurnRecord(sid, 1, "assistant", "Thank you for sharing that.",
                              at=start + dt.timedelta(days=i, minutes=2), embedding=embedder.embed(["Thank you for sharing that."])[0]))
        a.end_session(sid)
    search.rebuild_index(a)
    yield a
    a.close()


def entry_of(hit) -> int:
    return hit.session_id - 1


def evaluate(journal, embedder, method):
    out = {}
    for kind in ("keyword", "paraphrase"):
        recall, rr = [], []
        for k, query, relevant in QUERIES:
            if k != kind:
                continue
            hits = [entry_of(h) for h in search.search(journal, query, embedder=embedder, method=method,
                                                       limit=10, filters=search.Filters(role="user"))]
            recall.append(len(relevant & set(hits[:3])) / min(len(relevant), 3))
            rank = next((i for i, e in enumerate(hits, 1) if e in relevant), None)
            rr.append(1 / rank if rank else 0.0)
        out[kind] = (sum(recall) / len(recall), sum(rr) / len(rr))
    return out


def test_hybrid_is_at_least_as_good_as_either_alone(journal, embedder, capsys):
    results = {m: evaluate(journal, embedder, m) for m in ("bm25", "vector", "hybrid")}
    with capsys.disabled():
        print("\nsearch relevance (recall@3 / MRR):")
        for m, r in results.items():
            print(f"  {m:7s} keyword {r['keyword'][0]:.2f} / {r['keyword'][1]:.2f}   "
                  f"paraphrase {r['paraphrase'][0]:.2f} / {r['paraphrase'][1]:.2f}")
    for kind in ("keyword", "paraphrase"):
        for metric in (0, 1):
            best = max(results["bm25"][kind][metric], results["vector"][kind][metric])
            assert results["hybrid"][kind][metric] >= best - 1e-9, (kind, metric, results)
    assert results["hybrid"]["keyword"][0] >= 0.85 and results["hybrid"]["paraphrase"][0] >= 0.6


def test_a_turn_is_found_the_moment_it_is_archived(journal, embedder):
    assert search.delta_size(journal) == 0
    text = "Kayaking on the fjord at dawn was unforgettable."
    sid = journal.begin_session()
    journal.add_turn(TurnRecord(sid, 0, "user", text, embedding=embedder.embed([text])[0]))
    assert search.delta_size(journal) == 1  # the fts index has not seen it...
    for method in ("bm25", "vector", "hybrid"):  # ...and every method finds it anyway
        hits = search.search(journal, "kayaking fjord", embedder=embedder, method=method)
        assert hits and hits[0].text == text, method
    assert search.search(journal, "kayaking fjord", embedder=embedder, method="bm25")[0].terms == ("Kayaking", "fjord")
    # Fresh and indexed turns are scored alike: after a rebuild the score is the same.
    before = search.bm25(journal, "kayaking fjord")[0][1]
    search.rebuild_index(journal)
    assert search.bm25(journal, "kayaking fjord")[0][1] == pytest.approx(before, rel=0.05)


@pytest.mark.parametrize("query", ["sleep", "fight with my brother", "work deadline stress", "the and of"])
def test_bm25_scores_as_the_fts_extension_does(journal, query):
    """Our postings lists give the fts extension's own BM25 (match_bm25), turn for turn.

    Its macro takes DuckDB's log(), which is base 10; ours is the natural log of the
    BM25 literature: every score is ln(10) times its, and the ranking is the same."""
    ours = {uid: score for uid, score, _ in search.bm25(journal, query, limit=1000)}
    theirs = dict(journal.execute(
        "SELECT uid, score FROM (SELECT uid, fts_main_turns.match_bm25(uid, ?) AS score FROM turns) "
        "WHERE score IS NOT NULL", [query]).fetchall())
    assert ours.keys() == theirs.keys()
    assert all(ours[u] == pytest.approx(theirs[u] * math.log(10), rel=1e-6) for u in ours)


def test_fresh_turns_are_found_whatever_their_place_in_the_journal(tmp_path):
    """The index's delta is usually "every uid above the highest indexed"; a turn added to an
    older session still open (two sessions at once), or one deleted without a rebuild, breaks
    that shape, and must be handled too."""
    with Archive.open(tmp_path / "j.duckdb") as a:
        older, newer = a.begin_session(), a.begin_session()
        a.add_turn(TurnRecord(older, 0, "user", "The quince jelly set at last"))
        a.add_turn(TurnRecord(newer, 0, "user", "A heron stood in the quince orchard"))
        search.rebuild_index(a)
        a.add_turn(TurnRecord(newer, 1, "user", "Quince again, this time roasted"))  # above every indexed uid
        a.add_turn(TurnRecord(older, 1, "user", "My quince tree is finally blooming"))  # below the newer session's
        assert search.delta_size(a) == 2
        found = {u for u, _, _ in search.bm25(a, "quince", limit=10)}
        assert found == {older * 1_000_000, older * 1_000_000 + 1, newer * 1_000_000, newer * 1_000_000 + 1}
        a.delete(newer, 0)  # without a rebuild: still in the index, gone from the journal
        found = {u for u, _, _ in search.bm25(a, "quince", limit=10)}
        assert found == {older * 1_000_000, older * 1_000_000 + 1, newer * 1_000_000 + 1}
        assert [u for u, _, _ in search.bm25(a, "heron")] == []


def test_filters(journal, embedder):
    jan5 = dt.datetime(2026, 1, 5)
    hits = search.search(journal, "sleep", embedder=embedder, filters=search.Filters(since=jan5, role="user"))
    assert hits and all(h.at >= jan5 for h in hits)
    hits = search.search(journal, "sleep", embedder=embedder, filters=search.Filters(until=jan5))
    assert all(h.at < jan5 for h in hits)
    hits = search.search(journal, "brother", embedder=embedder, filters=search.Filters(mode="check-in"))
    assert all(h.session_id % 2 == 0 for h in hits)  # check-in sessions are the even ids
    hits = search.search(journal, "thank you for sharing", embedder=embedder, filters=search.Filters(role="assistant"))
    assert hits and all(h.role == "assistant" for h in hits)


@pytest.mark.parametrize("query", ["'; DROP TABLE turns; --", '"fight" AND NOT brother', "brother*", "fight -brother",
                                   "NEAR(fight brother)", "%", "_", "\\", "😔💔", "ﬁght", "Ｆｉｇｈｔ", "ß", "\u202eevil",
                                   "a" * 1000, "the and of"])
def test_odd_queries_never_crash_or_inject(journal, embedder, query):
    n = journal.execute("SELECT count(*) FROM turns").fetchone()[0]
    search.search(journal, query, embedder=embedder)
    assert journal.execute("SELECT count(*) FROM turns").fetchone()[0] == n


def test_search_works_before_any_index_exists(tmp_path, embedder):
    with Archive.open(tmp_path / "j.duckdb") as a:
        sid = a.begin_session()
        a.add_turn(TurnRecord(sid, 0, "user", "The garden is full of tulips", embedding=embedder.embed(["x"])[0]))
        hits = search.search(a, "the tulips", embedder=embedder, method="bm25")
        assert [h.idx for h in hits] == [0] and hits[0].terms == ("tulips",)


def test_sketch_shortlist_finds_what_exact_search_finds(tmp_path):
    """Vector search ranks int8 96-dimension sketches first; it must keep the exact top 10."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(60, 384))
    vecs = centres[rng.integers(0, 60, 6000)] + rng.normal(scale=0.9, size=(6000, 384))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    with Archive.open(tmp_path / "j.duckdb") as a:
        sid = a.begin_session()
        # Through a CSV file: binding Python lists of floats is very slow in DuckDB.
        csv_path = tmp_path / "vecs.csv"
        sketches = sketch(vecs)
        with open(csv_path, "w") as f:
            f.write("k|e|c\n")
            for k in range(len(vecs)):
                f.write(f"{k}|[{','.join(map(str, vecs[k]))}]|[{','.join(map(str, sketches[k]))}]\n")
        a.execute(f"""INSERT INTO turns (uid, session_id, idx, role, recorded_at, text, embedding, sketch)
                      SELECT {sid} * 1000000 + k, {sid}, k, 'user', now(), 'x', e::FLOAT[384], c::TINYINT[96]
                      FROM read_csv('{csv_path}', delim = '|', header = true,
                                    columns = {{'k': 'INTEGER', 'e': 'VARCHAR', 'c': 'VARCHAR'}})""")
        overlaps = []
        for q in range(20):
            query = vecs[q * 97] + rng.normal(scale=0.05, size=384).astype(np.float32)
            query /= np.linalg.norm(query)
            exact = set(np.argsort(-(vecs @ query))[:10].tolist())
            got = {u - 1_000_000 for u, _ in search.vector(a, query, limit=10)}
            overlaps.append(len(exact & got) / 10)
    assert np.mean(overlaps) >= 0.95, overlaps


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_an_empty_query_is_an_input_error(journal, embedder, query):
    from voice_journal.errors import InputError

    with pytest.raises(InputError, match="empty"):
        search.search(journal, query, embedder=embedder)
