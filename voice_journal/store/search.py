"""Hybrid search over the journal: BM25 full text plus semantic similarity.

Two signals are combined (see :func:`fuse`):

* **BM25** over DuckDB's fts index (``fts_main_turns``), read through a
  table of postings lists built beside it (``search_postings``: one row per
  term, so a query reads only its own terms' postings instead of joining
  all 1.5 million of a 100k-turn journal). The index does not see inserts
  until it is rebuilt (2 s at 100k turns), so a search also scores the
  turns the index has not seen yet (the "delta"), with the same tokenizer,
  stemmer, stopwords and BM25 formula, against the index's statistics. A
  turn is therefore findable the moment it is archived; writers rebuild the
  index only when the delta grows past :data:`REBUILD_AFTER`.
* **Vectors**: each turn's all-MiniLM-L6-v2 embedding, compared by cosine
  similarity (exact, in DuckDB), so that "an argument with my sibling"
  finds "a fight with my brother".

The query is a bound parameter, and the terms made from it (the tokenizer
has removed quotes and punctuation) are inlined only as quote-doubled string
literals: quotes, FTS operators or SQL in a query are words to look for.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import functools
import json
import re
from dataclasses import dataclass

import duckdb
import numpy as np

from ..errors import InputError
from .archive import Archive, extension_path
from .embedding import project

REBUILD_AFTER = 500  # delta turns tolerated before a writer rebuilds the index
KEYWORD_WEIGHT = 0.3  # the most that matching words can add to a cosine similarity
BM25_HALF = 6.0  # the BM25 score that earns half of that
CANDIDATES = 50  # from each ranking, before fusion
MIN_COSINE = 0.25  # below this a vector "match" is noise for MiniLM
SHORTLIST = 400  # sketch-ranked candidates whose exact cosine is computed
_INDEX = "fts_main_turns"
_POSTINGS = "search_postings"
_INDEXED = "search_indexed"


def _load_fts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"LOAD '{extension_path('fts')}'")


def _has_index(con: duckdb.DuckDBPyConnection) -> bool:
    # The postings table is made in the same transaction as the fts index, after it: a
    # journal indexed by an older voice-journal has no postings yet and counts as unindexed.
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = ? AND NOT temporary", [_POSTINGS]).fetchone()[0])


def delta_size(archive: Archive) -> int:
    """How many turns the full-text index has not seen."""
    con = archive.connection
    _load_fts(con)
    if not _has_index(con):
        return con.execute("SELECT count(*) FROM turns").fetchone()[0]
    return con.execute(f"SELECT count(*) FROM turns WHERE {_delta_where(con)}").fetchone()[0]


def rebuild_index(archive: Archive) -> None:
    """Rebuild the full-text index and its postings lists over every turn (writers only)."""
    con = archive.connection
    _load_fts(con)
    with archive.transaction():
        con.execute("PRAGMA create_fts_index('turns', 'uid', 'text', stemmer='porter', stopwords='english', "
                    "strip_accents=1, lower=1, overwrite=1)")
        # Each term's postings as one list of (uid, term frequency, turn length).
        con.execute(f"""CREATE OR REPLACE TABLE {_POSTINGS} AS
            SELECT dict.term, list(struct_pack(uid := docs.name, tf := p.tf, len := docs.len::INTEGER)) AS postings
            FROM (SELECT termid, docid, count(*)::INTEGER AS tf FROM {_INDEX}.terms GROUP BY termid, docid) AS p
            JOIN {_INDEX}.dict AS dict USING (termid) JOIN {_INDEX}.docs AS docs USING (docid)
            GROUP BY dict.term ORDER BY dict.term""")
        # What the index holds, so that a search can find the turns it lacks without an
        # anti-join of every turn against its documents (10 ms at 100k turns): see _delta_where.
        con.execute(f"""CREATE OR REPLACE TABLE {_INDEXED} AS
            SELECT coalesce(max(name), -1) AS max_uid, count(*) AS turns, coalesce(sum(hash(name)), 0) AS uid_hash
            FROM {_INDEX}.docs""")


def refresh_index(archive: Archive, *, threshold: int = REBUILD_AFTER) -> bool:
    """Rebuild if the index is missing or lags by more than ``threshold`` turns."""
    if delta_size(archive) <= threshold and _has_index(archive.connection):  # delta_size loads fts
        return False
    rebuild_index(archive)
    return True


@dataclass(frozen=True)
class Filters:
    since: dt.datetime | None = None  # UTC
    until: dt.datetime | None = None
    mode: str | None = None
    role: str | None = None

    def sql(self, at: str = "t.recorded_at") -> tuple[str, list]:
        """A WHERE clause over turns ``t`` joined to sessions ``s``; ``at``: the time the dates filter."""
        clauses, params = [], []
        if self.since:
            clauses.append(f"{at} >= ?")
            params.append(self.since)
        if self.until:
            clauses.append(f"{at} < ?")
            params.append(self.until)
        if self.mode:
            clauses.append("s.mode = ?")
            params.append(self.mode)
        if self.role:
            clauses.append("t.role = ?")
            params.append(self.role)
        return (" AND ".join(clauses) or "true"), params


@dataclass(frozen=True)
class Hit:
    session_id: int
    idx: int | None  # None: a session summary
    at: dt.datetime
    role: str
    text: str
    score: float  # hybrid: cosine + keyword bonus; bm25: BM25; vector: cosine. Higher is better
    bm25: float | None  # None: not a keyword match
    cosine: float | None
    terms: tuple[str, ...]  # words of ``text`` that matched the query's terms, for highlighting


# The fts extension's tokenizer, for journals whose index is not built yet.
_TOKENIZE = ("string_split_regex(regexp_replace(lower(strip_accents(CAST(<COL> AS VARCHAR))), "
             "'[0-9!@#$%^&*()_+={}\\[\\]:;<>,.?~\\\\/\\|''\"`-]+', ' ', 'g'), '\\s+')")


@functools.cache
def english_stopwords() -> tuple[str, ...]:
    """The fts extension's English stopword list (read from a throwaway index in memory)."""
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": "false",
                                             "autoload_known_extensions": "false"})
    try:
        _load_fts(con)
        con.execute("CREATE TABLE t (id INTEGER, s VARCHAR)")
        con.execute("PRAGMA create_fts_index('t', 'id', 's', stopwords='english')")
        return tuple(r[0] for r in con.execute("SELECT sw FROM fts_main_t.stopwords").fetchall())
    finally:
        con.close()


def _stopword_table(con: duckdb.DuckDBPyConnection) -> str:
    """A temporary table of the English stopwords (temp tables work on read-only journals too)."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = 'vj_stopwords'").fetchone()[0]
    if not exists:
        con.execute("CREATE TEMP TABLE vj_stopwords AS SELECT unnest(?) AS sw", [list(english_stopwords())])
    return "temp.vj_stopwords"


def _string_list(values: list[str]) -> str:
    # SQL string literals: a quote is doubled, and nothing else is special in them (no NULs: see validate_query).
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def _int_list(values: list[int]) -> str:
    # Inlined: a bound Python list makes duckdb probe for pandas and polars on every call.
    return ",".join(str(int(v)) for v in values)


def _vector_literal(v: np.ndarray, dims: int = 384) -> str:
    # Inlined, not bound: DuckDB casts a bound list to FLOAT[384] once per row (4x slower).
    # Safe: every character comes from float formatting.
    return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(v, np.float32)) + f"]::FLOAT[{dims}]"


def _terms_sql(index: bool) -> str:
    """Query terms the way the index makes them: its tokenizer, porter stems, no stopwords.

    Takes one parameter, the query. Without an index, call :func:`_stopword_table` first.
    """
    if index:
        return (f"SELECT DISTINCT stem(t, 'porter') AS term FROM (SELECT unnest({_INDEX}.tokenize(?)) AS t) "
                f"WHERE t <> '' AND t NOT IN (SELECT sw FROM {_INDEX}.stopwords)")
    return (f"SELECT DISTINCT stem(t, 'porter') AS term FROM (SELECT unnest({_TOKENIZE.replace('<COL>', '?')}) AS t) "
            "WHERE t <> '' AND t NOT IN (SELECT sw FROM temp.vj_stopwords)")


def bm25(archive: Archive, query: str, limit: int = CANDIDATES, filters: Filters = Filters()) -> list[tuple[int, float, float]]:
    """(uid, score, coverage) of the best keyword matches, fresh turns included.

    ``coverage`` is the share of the query's terms the turn contains.
    """
    query = validate_query(query)
    _load_fts(archive.connection)
    index = _has_index(archive.connection)
    return _keyword(archive, _query_stems(archive, query, index), index, limit, filters)


def _keyword(archive: Archive, terms: set[str], index: bool, limit: int, filters: Filters) -> list[tuple[int, float, float]]:
    if not terms:
        return []  # only stopwords, digits or punctuation
    con = archive.connection
    sql, params = _bm25_sql(index, sorted(terms), limit, filters, _delta_where(con) if index else "")
    return [(int(u), float(sc), float(cov)) for u, sc, cov in con.execute(sql, params).fetchall()]


def _delta_where(con: duckdb.DuckDBPyConnection) -> str:
    """A condition on ``uid`` that holds for exactly the turns the index has not seen.

    Usually those are the turns archived since the rebuild, all above the
    highest uid indexed: that is so if the turns up to it are the indexed
    ones (same count and same sum of hashes). Otherwise (a turn added to an
    older session that is still open, a turn deleted) every turn is checked
    against the index's documents.
    """
    max_uid, same = con.execute(f"""
        SELECT i.max_uid, c.n = i.turns AND c.h = i.uid_hash FROM {_INDEXED} AS i,
               (SELECT count(*) AS n, coalesce(sum(hash(uid)), 0) AS h FROM turns
                WHERE uid <= (SELECT max_uid FROM {_INDEXED})) AS c""").fetchone()
    return f"uid > {int(max_uid)}" if same else f"uid NOT IN (SELECT name FROM {_INDEX}.docs)"


def _bm25_sql(index: bool, terms: list[str], limit: int, filters: Filters, delta_where: str) -> tuple[str, list]:
    # The terms are inlined, not bound, one equality each: such a filter is pushed down into
    # the scan of the postings table, which then reads only those terms' lists (an IN list
    # or a join read them all).
    qterms = _string_list(terms)
    where, params = filters.sql()
    if not index:
        # A journal whose index was never built (read-only, before any writer): all of it is delta.
        sql = f"""
        WITH toks AS (SELECT uid, stem(t, 'porter') AS term FROM (SELECT uid, unnest({_TOKENIZE.replace('<COL>', 'text')}) AS t
                 FROM turns) WHERE t <> '' AND t NOT IN (SELECT sw FROM temp.vj_stopwords)),
        lens AS (SELECT uid, count(*) AS len FROM toks GROUP BY uid),
        stats AS (SELECT count(*) AS n, coalesce(avg(len), 1) AS avgdl FROM lens),
        postings AS MATERIALIZED (SELECT toks.uid, term, count(*) AS tf, any_value(len) AS len FROM toks JOIN lens USING (uid)
                     WHERE term IN ({qterms}) GROUP BY toks.uid, term),
        {_SCORE}"""
    else:
        indexed = " UNION ALL ".join(f"SELECT term, unnest(postings) AS p FROM {_POSTINGS} WHERE term = {_string_list([t])}"
                                     for t in terms)
        sql = f"""
        WITH delta AS (SELECT uid, text FROM turns WHERE {delta_where}),
        dtoks AS (SELECT uid, stem(t, 'porter') AS term FROM (SELECT uid, unnest({_INDEX}.tokenize(text)) AS t FROM delta)
                  WHERE t <> '' AND t NOT IN (SELECT sw FROM {_INDEX}.stopwords)),
        dlens AS (SELECT uid, count(*) AS len FROM dtoks GROUP BY uid),
        stats AS (SELECT coalesce((SELECT num_docs FROM {_INDEX}.stats), 0) + (SELECT count(*) FROM delta) AS n,
                         coalesce((SELECT avgdl FROM {_INDEX}.stats), (SELECT avg(len) FROM dlens), 1) AS avgdl),
        postings AS MATERIALIZED (
            SELECT p.uid AS uid, term, p.tf AS tf, p.len AS len
            FROM ({indexed})
            UNION ALL
            SELECT dtoks.uid, term, count(*), any_value(len) FROM dtoks JOIN dlens USING (uid)
            WHERE term IN ({qterms}) GROUP BY dtoks.uid, term),
        {_SCORE}"""
    join = "JOIN sessions s ON s.id = t.session_id" if filters.mode else ""
    sql = sql.replace("{where}", where).replace("{join}", join).replace("{nterms}", str(len(terms)))
    return sql, [*params, limit]


# BM25 with the fts extension's constants (k1 = 1.2, b = 0.75; the natural log, where its
# macro takes log10: the same ranking). A turn has one posting per term, so coverage is a
# plain count. Deleted turns still in the index drop out in the join with turns.
_SCORE = """
        df AS (SELECT term, count(*) AS df FROM postings GROUP BY term),
        scored AS (
            SELECT p.uid, sum(ln(((stats.n - df.df + 0.5) / (df.df + 0.5)) + 1)
                              * p.tf * 2.2 / (p.tf + 1.2 * (0.25 + 0.75 * p.len / stats.avgdl))) AS score,
                   count(*) / {nterms} AS coverage
            FROM postings p JOIN df USING (term), stats GROUP BY p.uid)
        SELECT scored.uid, scored.score, scored.coverage FROM scored JOIN turns t ON t.uid = scored.uid {join}
        WHERE {where} ORDER BY scored.score DESC, scored.uid DESC LIMIT ?"""


def vector(archive: Archive, query_vec: np.ndarray, limit: int = CANDIDATES,
           filters: Filters = Filters(), con: duckdb.DuckDBPyConnection | None = None) -> list[tuple[int, float]]:
    """(uid, cosine) of the turns closest in meaning to ``query_vec``.

    Two stages: the int8 sketches are scanned for :data:`SHORTLIST`
    candidates, which are then ranked by their exact cosine; turns without a
    sketch yet are scored exactly.
    """
    con = con or archive.connection
    where, params = filters.sql()
    join = "JOIN sessions s ON s.id = t.session_id" if filters.mode else ""
    rows = con.execute(
        f"""WITH shortlist AS (
                SELECT t.uid FROM turns t {join}
                WHERE t.sketch IS NOT NULL AND {where}
                ORDER BY array_inner_product(t.sketch::FLOAT[96], {_vector_literal(project(query_vec), 96)}) DESC
                LIMIT {SHORTLIST}),
            unsketched AS (
                SELECT t.uid FROM turns t {join} WHERE t.sketch IS NULL AND t.embedding IS NOT NULL AND {where})
            SELECT uid, array_cosine_similarity(embedding, {_vector_literal(query_vec)}) AS cos FROM turns
            WHERE uid IN (SELECT uid FROM shortlist UNION ALL SELECT uid FROM unsketched)
            ORDER BY cos DESC, uid DESC LIMIT ?""",
        [*params, *params, limit],
    ).fetchall()
    return [(int(u), float(c)) for u, c in rows if c >= MIN_COSINE]


def cosines(archive: Archive, query_vec: np.ndarray, uids: list[int]) -> dict[int, float]:
    """Cosine similarity of given turns to the query (0 for turns without a vector)."""
    if not uids:
        return {}
    rows = archive.connection.execute(
        f"SELECT uid, array_cosine_similarity(embedding, {_vector_literal(query_vec)}) FROM turns "
        f"WHERE uid IN ({_int_list(uids)})").fetchall()
    return {int(u): float(c or 0.0) for u, c in rows}


def fuse(keyword: list[tuple[int, float, float]], semantic: dict[int, float]) -> list[tuple[int, float]]:
    """One score per turn: its cosine, plus a bounded bonus for matching the query's words.

    The bonus is ``KEYWORD_WEIGHT * coverage * bm25 / (bm25 + BM25_HALF)``:
    saturating, so no single rare word outweighs meaning, and scaled by the
    share of the query's terms present, so a paraphrase that happens to
    share one common word ("feel", "job") is not lifted over a true match
    (rank fusion, tried first, did exactly that: see tests/test_search.py).
    """
    scores = {uid: cos for uid, cos in semantic.items()}
    for uid, score, coverage in keyword:
        scores[uid] = scores.get(uid, 0.0) + KEYWORD_WEIGHT * coverage * score / (score + BM25_HALF)
    return sorted(scores.items(), key=lambda kv: (-kv[1], -kv[0]))


def validate_query(query: str) -> str:
    q = query.strip()
    if not q:
        raise InputError("the search text is empty")
    if len(q) > 1000:
        raise InputError("the search text is too long (1000 characters at most)")
    if "\x00" in q:
        raise InputError("the search text holds a NUL character")
    return q


def search(archive: Archive, query: str, *, embedder=None, limit: int = 10, filters: Filters = Filters(),
           method: str = "hybrid") -> list[Hit]:
    """The turns that best match ``query``: ``method`` is hybrid, bm25 or vector."""
    q = validate_query(query)
    if method not in ("hybrid", "bm25", "vector"):
        raise InputError(f"unknown search method {method!r}")
    if method in ("hybrid", "vector") and embedder is None:
        raise InputError("semantic search needs the embedding model (minilm-l6)")
    qvec = embedder.embed([q])[0] if method in ("hybrid", "vector") else None
    con = archive.connection
    _load_fts(con)
    index = _has_index(con)
    stems = _query_stems(archive, q, index)  # for the keyword ranking, and to highlight every hit
    keyword: list[tuple[int, float, float]] = []
    semantic: dict[int, float] = {}
    if method == "hybrid":
        # The two rankings run at once, on two cursors of the same database (DuckDB drops the GIL).
        cursor = archive.cursor()
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(vector, archive, qvec, CANDIDATES, filters, cursor)
                keyword = _keyword(archive, stems, index, CANDIDATES, filters)
                # Keyword matches are scored by meaning too, while the vector search still runs.
                meaning = cosines(archive, qvec, [u for u, _, _ in keyword])
                semantic = dict(pending.result())
        finally:
            cursor.close()
        for uid, cos in meaning.items():
            semantic.setdefault(uid, cos)
    elif method == "bm25":
        keyword = _keyword(archive, stems, index, CANDIDATES, filters)
    else:
        semantic = dict(vector(archive, qvec, CANDIDATES, filters))
    if method == "hybrid":
        ranked = fuse(keyword, semantic)
    elif method == "bm25":
        ranked = [(u, sc) for u, sc, _ in keyword]
    else:
        ranked = sorted(semantic.items(), key=lambda kv: (-kv[1], -kv[0]))
    ranked = ranked[:limit]
    if not ranked:
        return []
    kw, sem = {u: sc for u, sc, _ in keyword}, semantic
    uids = [u for u, _ in ranked]
    rows = {r[0]: r for r in con.execute(
        f"SELECT uid, session_id, idx, recorded_at, role, text FROM turns WHERE uid IN ({_int_list(uids)})"
    ).fetchall()}
    matching = _matching_words(archive, [r[5] for r in rows.values()], stems)
    hits = []
    for uid, score in ranked:
        if uid not in rows:
            continue
        _, sid, idx, at, role, text = rows[uid]
        words = tuple(w for w in sorted(set(_WORD.findall(text))) if w in matching)
        hits.append(Hit(sid, idx, at, role, text, score, kw.get(uid), sem.get(uid), words))
    return hits


def _query_stems(archive: Archive, q: str, index: bool | None = None) -> set[str]:
    """The query's terms as the index makes them (stems, no stopwords)."""
    if index is None:
        index = _has_index(archive.connection)
    if not index:
        _stopword_table(archive.connection)
    return {r[0] for r in archive.connection.execute(_terms_sql(index), [q]).fetchall()}


_WORD = re.compile(r"\w+", re.UNICODE)


def _matching_words(archive: Archive, texts: list[str], stems: set[str]) -> set[str]:
    """The words of ``texts`` whose stem is one of the query's (one query for all hits)."""
    words = sorted({w for text in texts for w in _WORD.findall(text)})
    if not stems or not words:
        return set()
    listed = _string_list(words)
    rows = archive.connection.execute(
        f"SELECT w, stem(lower(strip_accents(w)), 'porter') FROM (SELECT unnest([{listed}]) AS w)"
    ).fetchall()
    return {w for w, s in rows if s in stems}


# -- session summaries ---------------------------------------------------------


SUMMARY_MIN_COSINE = 0.3  # below this a summary is about something else


def summary_hits(archive: Archive, query: str, *, embedder=None, limit: int = 3, filters: Filters = Filters(),
                 method: str = "hybrid") -> list[Hit]:
    """Sessions whose summary matches ``query``: by meaning, plus a bonus for the share of its words present.

    There is one summary per session, so they are scored exactly (no index);
    a hit has ``role`` "summary" and ``idx`` None, and its text is the
    summary followed by its themes.
    """
    q = validate_query(query)
    where, params = dataclasses.replace(filters, role=None).sql(at="s.started_at")
    qvec = embedder.embed([q])[0] if embedder is not None and method != "bm25" else None
    cos = (f"array_cosine_similarity(m.embedding, {_vector_literal(qvec)})" if qvec is not None else "0.0")
    rows = archive.connection.execute(
        f"""SELECT m.session_id, s.started_at, m.summary, m.themes, coalesce({cos}, 0.0) AS cos
            FROM summaries m JOIN sessions s ON s.id = m.session_id WHERE {where}
            ORDER BY cos DESC, m.session_id DESC LIMIT 200""", params).fetchall()
    if method != "vector":
        _load_fts(archive.connection)  # its stemmer scores the summaries' words
    stems = _query_stems(archive, q) if method != "vector" else set()
    hits = []
    for sid, at, summary, themes, c in rows:
        text = f"{summary} ({', '.join(json.loads(themes))})"
        matched = _matching_words(archive, [text], stems) if stems else set()
        coverage = len({_stem_of(archive, w) for w in matched} & stems) / len(stems) if stems else 0.0
        score = (c if method != "bm25" else 0.0) + (KEYWORD_WEIGHT * coverage if method != "vector" else 0.0)
        if (method == "bm25" and coverage == 0) or (method != "bm25" and c < SUMMARY_MIN_COSINE and coverage == 0):
            continue
        hits.append(Hit(int(sid), None, at, "summary", text, score, None, float(c) if qvec is not None else None,
                        tuple(sorted(matched))))
        if len(hits) >= 40:  # rows come best-by-meaning first: enough to rank
            break
    return sorted(hits, key=lambda h: (-h.score, -h.session_id))[:limit]


def _stem_of(archive: Archive, word: str) -> str:
    return archive.connection.execute("SELECT stem(lower(strip_accents(?)), 'porter')", [word]).fetchone()[0]
