"""Talking to the companion in the browser: one live session held over a WebSocket.

The session is the terminal's own :class:`~voice_journal.session.LiveSession`
(VAD, the pause's transcription, the reply begun in the pause, the safety
check, memory, the journal); only its microphone and speaker are elsewhere::

    tab: getUserMedia ─▶ AudioWorklet (16 kHz int16) ─▶ WebSocket ─▶ RelayedMicrophone ─┐
                                                                                         ▼
                                                          LiveSession (its own thread) ─▶ RelayedSpeaker
    tab: plays each piece as it arrives ◀── binary frames at the voice's rate ◀─────────┘
    tab: shows each turn, the state     ◀── JSON: {"type": "UserSpoke", ...}, {"type": "state", ...}

What the tab sends: binary frames of 16-bit little-endian PCM at 16 kHz,
mono, up to a second each; or the text ``{"type": "end"}`` to end the
session (what was said is answered, then it is over). Anything else is
refused in one message and the connection closed, as is closing the tab:
either way the turn in progress is archived as partial, nothing else lost.

What it is sent: ``{"type": "state", "state": "listening"}`` (and
``loading``, ``hearing``, ``thinking``, ``speaking``, ``closing``,
``ended``); each session event by its class name (``UserSpoke``,
``CompanionReplied``, ``SafetyAlert``, ``ModeChanged``...) with its fields;
``{"type": "voice", "rate": 22050}`` before audio of a new rate; binary
audio frames; ``{"type": "stop"}`` when a barge-in silences the voice;
``{"type": "ended", "session": 12, "turns": 3}``; ``{"type": "error",
"message": ...}``.

One session at a time: a second tab is told that one is running. The
models are loaded at the first session and kept for the server's life.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from typing import Any, Callable

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .. import app as journal_app
from ..audio.relay import RelayedMicrophone, RelayedSpeaker
from ..config import Settings
from ..errors import InputError, VoiceJournalError

log = logging.getLogger(__name__)

REFUSED = 1003  # a WebSocket close code: data it cannot accept
BUSY = 1013  # try again later: a session is running
POLICY = 1008  # no token, or another site's page


class Talk:
    """The ``/api/talk`` WebSocket: one spoken session at a time, on models loaded once."""

    def __init__(self, settings: Settings, allowed: Callable[[WebSocket], bool], engines=None):
        self.settings = settings
        self.allowed = allowed
        self._one = threading.Lock()  # held for the whole of a session
        self._engines = engines
        self._owned = engines is None  # loaded here, closed here

    def engines(self):
        """The session's models, loaded on first use and kept (a session starts in a second, not twenty).

        Only the one session running calls it (``_one`` is held), so it needs no lock of its own.
        """
        from ..session import load_engines

        if self._engines is None:
            self._engines = load_engines(self.settings)
        return self._engines

    def close(self) -> None:
        if self._engines is not None and self._owned:
            self._engines.close()
            self._engines = None

    async def connect(self, ws: WebSocket) -> None:
        if not self.allowed(ws):
            await ws.close(code=POLICY)  # before accepting: the handshake is answered 403
            return
        await ws.accept()
        if not self._one.acquire(blocking=False):
            await ws.send_json({"type": "error", "message": "a session is already running (in another tab or "
                                                            "window): end it there first"})
            await ws.close(code=BUSY)
            return
        try:
            await _Call(self, ws).hold()
        finally:
            self._one.release()


class _Call:
    """One session's connection: the tab's audio in, the session's words and voice out."""

    def __init__(self, talk: Talk, ws: WebSocket):
        self.talk, self.ws = talk, ws
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.mic = RelayedMicrophone("browser")
        self.speaker = RelayedSpeaker(lambda samples, rate: self.post(("audio", samples, rate)),
                                      lambda: self.post({"type": "stop"}), name="browser")
        self.session = None  # the LiveSession, once the models are loaded
        self.refused: str | None = None

    def post(self, message: Any) -> None:
        """Queue a message for the tab; any thread may call it."""
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, message)

    async def hold(self) -> None:
        params = self.ws.query_params
        barge_in = params.get("barge_in", "0") in ("1", "true", "on")
        mode = params.get("mode") or None
        thread = threading.Thread(target=self._run, args=(barge_in, mode), name="browser-session", daemon=True)
        sender = asyncio.create_task(self._send())
        ticker = asyncio.create_task(self._tick())
        thread.start()
        try:
            await self._receive()
        finally:
            self.mic.hang_up()  # the tab went (or was refused): a session still running keeps what it heard, and ends
            await asyncio.to_thread(thread.join)
            ticker.cancel()
            await sender  # it ends at the session's "done", closing the connection if it is still open

    # -- the session, on its own thread ----------------------------------------

    def _run(self, barge_in: bool, mode: str | None) -> None:
        from ..companion.modes import DEFAULT_MODE
        from ..session import LiveOptions, LiveSession

        try:
            self.post({"type": "state", "state": "loading"})
            engines = self.talk.engines()
            if self.mic.gone:  # refused, or closed while the models loaded: no session was begun
                return
            with journal_app.open_journal(self.talk.settings) as journal:
                self.session = LiveSession(engines, journal, self.talk.settings, self.mic, self.speaker,
                                           LiveOptions(barge_in=barge_in), mode=mode or DEFAULT_MODE,
                                           on_event=self._event)
                result = self.session.run()
            self.post({"type": "ended", "session": result.session_id, "turns": result.user_turns})
        except VoiceJournalError as e:
            log.warning("a session in the browser ended: %s", e)
            self.post({"type": "error", "message": str(e)})
        except Exception as e:  # a bug: tell the tab in a line, keep the trace in the log
            log.exception("a session in the browser failed")
            self.post({"type": "error", "message": f"the session failed: {type(e).__name__}"})
        finally:
            self.post({"type": "state", "state": "ended"})
            self.post("done")

    def _event(self, e: object) -> None:
        if dataclasses.is_dataclass(e):
            self.post({"type": type(e).__name__, **dataclasses.asdict(e)})

    # -- the connection ----------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):  # closed from this side (the session ended)
                return
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("bytes") is not None:
                    self.mic.push(message["bytes"])
                    continue
                asked = _json(message.get("text"))
                if asked.get("type") != "end":
                    raise InputError(f"unknown message {str(asked.get('type'))[:40]!r}: send audio, or {{\"type\": \"end\"}}")
                self.mic.end()
            except InputError as e:
                self.refused = str(e)
                self.post({"type": "error", "message": str(e)})
                return

    async def _send(self) -> None:
        rate = 0
        while True:
            message = await self.outbox.get()
            if message == "done":  # the session is over (the session thread's last message)
                if self.ws.application_state == WebSocketState.CONNECTED:
                    try:  # the tab's side ends too (its receive loop sees the close)
                        await self.ws.close(code=REFUSED if self.refused else 1000)
                    except Exception:  # the tab closed it first
                        pass
                return
            if self.ws.application_state != WebSocketState.CONNECTED:
                continue
            try:
                if isinstance(message, tuple):
                    _, samples, r = message
                    if r != rate:
                        rate = r
                        await self.ws.send_json({"type": "voice", "rate": r})
                    await self.ws.send_bytes(np.asarray(samples, "<i2").tobytes())
                else:
                    await self.ws.send_text(json.dumps(message, default=str))
            except Exception:  # the tab is gone (a disconnect, a closed stream); _receive tells the session
                pass

    async def _tick(self) -> None:
        last = None
        while True:
            await asyncio.sleep(0.1)
            s = self.session
            if s is not None and s.state != last:
                last = s.state
                self.post({"type": "state", "state": last.value})


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "")
    except (ValueError, TypeError):
        raise InputError("not JSON: send audio as binary frames, or {\"type\": \"end\"}") from None
    if not isinstance(value, dict):
        raise InputError("a message is a JSON object")
    return value
