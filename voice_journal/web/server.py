"""The journal in the browser: a small Starlette app over :mod:`voice_journal.app`.

Everything the page shows comes from the same plain functions the command
line calls; this module only turns requests into those calls and their
values into JSON, audio and one HTML page. It holds no SQL and no logic of
its own.

Private by default:

* bound to 127.0.0.1 unless told otherwise (the CLI warns when it is not);
* every request needs the token ``serve`` printed: the first visit brings it
  in the URL (``/?token=...``), the page trades it for an ``HttpOnly``,
  ``SameSite=Strict`` cookie and drops it from the address bar; an API
  client may send ``Authorization: Bearer TOKEN``. Without it: 401, and
  nothing about the journal;
* nothing from elsewhere: the page's script and style ship in the package,
  and a Content-Security-Policy forbids anything else (no CDN, no
  third-party fonts, no inline script);
* the journal is opened read-only for each read and let go of at once, so a
  session recording in another terminal goes on; a delete opens it for
  writing only for the delete.

    >>> app = create_app(config.load(), token="s3cret")   # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8765)    # doctest: +SKIP
"""

from __future__ import annotations

import hmac
import io
import logging
import secrets
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from .. import app as journal_app
from ..config import Settings
from ..errors import InputError, NotFound, StoreError, VoiceJournalError
from . import charts
from .talk import Talk

log = logging.getLogger(__name__)

COOKIE = "vj_token"
STATIC = resources.files(__package__) / "static"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "talk.js": "text/javascript; charset=utf-8",
          "mic-worklet.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
MAX_QUERY = 1000  # characters of a search; the app layer refuses what is odd within it


def new_token() -> str:
    return secrets.token_urlsafe(24)


def create_app(settings: Settings, *, token: str, engines=None) -> Starlette:
    """The web app for the journal ``settings.db``, open to whoever holds ``token``.

    An encrypted journal's passphrase is asked once, by whoever starts the
    server, before it serves (``voice-journal serve`` asks at the terminal):
    the app layer keeps it for the process, and the page never sees it.

    ``engines``: the models a spoken session in the page runs on, already
    loaded (and closed by the caller); by default they are loaded at the
    first such session and kept until the app shuts down.
    """
    if not token:
        raise InputError("the web page needs a token")
    web = _Web(settings)
    talk = Talk(settings, _talk_allowed(token), engines)

    @asynccontextmanager
    async def lifespan(app):
        yield
        talk.close()  # the models a session in the page loaded

    routes = [
        Route("/", web.page),
        Route("/static/{name}", web.asset),
        Route("/favicon.ico", lambda request: Response(status_code=204)),  # none: a browser asks anyway
        Route("/api/sessions", web.sessions),
        Route("/api/sessions/{sid:int}", web.session, methods=["GET", "DELETE"]),
        Route("/api/sessions/{sid:int}/turns/{idx:int}/audio", web.audio),
        Route("/api/search", web.search),
        Route("/api/insights", web.insights),
        Route("/api/insights/mood.svg", web.mood_svg),
        Route("/api/export", web.export),
        WebSocketRoute("/api/talk", talk.connect),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_Guard, token=token)], lifespan=lifespan,
                     exception_handlers={VoiceJournalError: _error, 404: _not_found, 405: _not_found})


class _Guard(BaseHTTPMiddleware):
    """The token on every request, and the same safety headers on every answer."""

    def __init__(self, app, token: str):
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next) -> Response:
        offered = request.query_params.get("token")
        if offered is not None and request.url.path == "/" and _same(offered, self.token):
            # Trade the token in the address for a cookie, and take it out of the address bar and history.
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        elif not self._allowed(request):
            response = PlainTextResponse("This page needs the link `voice-journal serve` printed.\n", 401)
        else:
            response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _allowed(self, request: Request) -> bool:
        return _holds_token(request, self.token)


def _holds_token(conn: HTTPConnection, token: str) -> bool:
    """The token, in the page's cookie or an ``Authorization: Bearer`` header."""
    cookie = conn.cookies.get(COOKIE)
    bearer = conn.headers.get("authorization", "")
    given = cookie or (bearer[7:] if bearer.lower().startswith("bearer ") else None)
    return given is not None and _same(given, token)


def _talk_allowed(token: str) -> Callable[[HTTPConnection], bool]:
    """A WebSocket passes no HTTP middleware: the token, and (from a browser) this page's own origin.

    Browsers do not hold WebSockets to the same-origin rule; a page on another site must not be able
    to open one to the journal with the person's cookie.
    """
    def allowed(ws: HTTPConnection) -> bool:
        origin = ws.headers.get("origin")
        if origin is not None and origin != f"http://{ws.headers.get('host', '')}":
            return False
        return _holds_token(ws, token)

    return allowed


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


async def _error(request: Request, exc: VoiceJournalError) -> Response:
    status = (404 if isinstance(exc, NotFound) else 400 if isinstance(exc, InputError)
              else 503 if isinstance(exc, StoreError) else 500)
    return JSONResponse({"error": str(exc)}, status)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return JSONResponse({"error": "not found" if status == 404 else "not allowed"}, status)


class _Web:
    """The request handlers: each opens the journal, calls the app layer, and lets go."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @contextmanager
    def _journal(self, *, write: bool = False) -> Iterator:
        with journal_app.open_journal(self.settings, read_only=not write) as journal:
            yield journal

    async def page(self, request: Request) -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return Response(html, media_type="text/html; charset=utf-8")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:  # a fixed list: no path from the request ever reaches the file system
            return JSONResponse({"error": "not found"}, 404)
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])

    def sessions(self, request: Request) -> Response:
        if not self.settings.db.exists():  # nothing recorded yet: an empty journal, not an error
            return JSONResponse({"sessions": [], "summaries_due": 0})
        with self._journal() as journal:
            listing = journal_app.sessions(journal, _int(request, "limit", 200, 1, 10_000))
            rows = listing.to_dicts()
            summaries = {s.session_id: s for s in journal.summaries()}
            flagged = journal.flags()
            rated: dict[int, dict[str, float]] = {}  # the person's own mood ratings, before and after
            for x in journal.answers():
                if x.mode == "mood" and x.field in ("before", "after") and x.value is not None:
                    rated.setdefault(x.session_id, {})[x.field] = x.value
        for r in rows:
            s = summaries.get(r["session"])
            r["summary"] = s.summary if s else None
            r["themes"] = list(s.themes) if s else []
            r["mood"] = s.mood if s else None
            r["flags"] = list(flagged.get(r["session"], ()))
            r["mood_before"] = rated.get(r["session"], {}).get("before")
            r["mood_after"] = rated.get(r["session"], {}).get("after")
        return JSONResponse({"sessions": rows, "summaries_due": listing.backlog.due})

    def session(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        if request.method == "DELETE":
            if request.query_params.get("confirm") != str(sid):
                raise InputError(f"to delete session {sid}, confirm with its number")
            with self._journal(write=True) as journal:
                removed = journal_app.delete(journal, sid)
            return JSONResponse({"deleted": sid, "turns": removed})
        with self._journal() as journal:
            found = journal_app.session_view(journal, sid, with_audio=True)
        view, audio = found.to_dict(), {t.idx for t in found.turns if t.audio_flac}
        for t in view["turns"]:
            t["audio"] = f"/api/sessions/{sid}/turns/{t['turn']}/audio" if t["turn"] in audio else None
        return JSONResponse(view)

    def audio(self, request: Request) -> Response:
        sid, idx = request.path_params["sid"], request.path_params["idx"]
        with self._journal() as journal:  # only this turn's audio: a player asks again for every seek
            found = journal.turns(sid, with_audio=True, idx=idx)
            if not found:
                journal.session(sid)  # "no session" when that is what is wrong
                raise NotFound(f"session {sid} has no turn {idx}")
        if not found[0].audio_flac:
            raise NotFound(f"{sid}:{idx} has no recorded audio")
        return _ranged(request, bytes(found[0].audio_flac), "audio/flac")

    def search(self, request: Request) -> Response:
        text = request.query_params.get("q", "")
        if len(text) > MAX_QUERY:
            raise InputError(f"a search is at most {MAX_QUERY} characters")
        role = request.query_params.get("role") or None
        with self._journal() as journal:
            hits = journal_app.search(journal, text, limit=_int(request, "limit", 20, 1, 200), role=role,
                                      mode=request.query_params.get("mode") or None,
                                      since=journal_app.parse_when(request.query_params.get("since") or None, "since"),
                                      method=request.query_params.get("method") or "hybrid")
        return JSONResponse({"query": text, "hits": [journal_app.hit_dict(h) for h in hits]})

    def insights(self, request: Request) -> Response:
        with self._journal() as journal:
            found = journal_app.look_back(journal)
        return JSONResponse(charts.insights_dict(found))

    def mood_svg(self, request: Request) -> Response:
        with self._journal() as journal:
            found = journal_app.look_back(journal)
        return Response(charts.mood_svg(found), media_type="image/svg+xml")

    def export(self, request: Request) -> Response:
        import tempfile
        import zipfile

        fmt = request.query_params.get("format", "md")
        if fmt not in ("md", "json"):
            raise InputError("format is md or json")
        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory(prefix="voice-journal-export-") as folder:
            with self._journal() as journal:
                written = journal_app.export(journal, Path(folder), fmt=fmt)
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
                for path in written:
                    z.write(path, path.relative_to(folder))
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="journal-{fmt}.zip"'})


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name} must be a number") from None
    if not low <= value <= high:
        raise InputError(f"{name} is between {low} and {high}")
    return value


def _ranged(request: Request, data: bytes, media_type: str) -> Response:
    """``data``, or the part of it a ``Range: bytes=a-b`` header asks for (what audio players seek with)."""
    size = len(data)
    asked = request.headers.get("range", "")
    if not asked.startswith("bytes=") or "," in asked:
        return Response(data, media_type=media_type, headers={"Accept-Ranges": "bytes"})
    first, _, last = asked[6:].strip().partition("-")
    try:
        if first == "":  # the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
    except ValueError:
        start, end = size, size  # unreadable: refused below
    if start >= size or start > end:
        return Response(b"", 416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
    return Response(data[start: end + 1], 206, media_type=media_type,
                    headers={"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"})


def run(web: Starlette, host: str, port: int, on_ready: Callable[[], None] = lambda: None) -> None:
    """Serve until Ctrl-C (uvicorn, one process; its access log off: the URLs hold search words).

    ``on_ready`` is called once the socket listens: a link printed then works when it is opened.
    """
    import socket

    import uvicorn

    try:  # a clear one-line refusal for a port in use (uvicorn would log it and exit)
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                on_ready()

    Server(uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False,
                          server_header=False)).run()
