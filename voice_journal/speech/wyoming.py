"""Speech services on another machine, spoken to over Wyoming (Home Assistant's protocol for speech).

A home server or a GPU box that already runs ``wyoming-faster-whisper``
(speech to text, port 10300 by convention) or ``wyoming-piper`` (text to
speech, port 10200) can do the listening and the speaking with bigger
models than two cores allow. The settings name them::

    stt = "wyoming://homeserver:10300"
    tts = "wyoming://homeserver:10200"

:class:`RemoteTranscriber` and :class:`RemoteVoice` have the shape of the
local :class:`~voice_journal.speech.stt.Transcriber` and
:class:`~voice_journal.speech.tts.Voice`, so a session uses either without
knowing which. Every failure is a :class:`SpeechServiceError` with one
line that says what happened; :mod:`.fallback` turns it into the local
model taking over, so a service going away never ends a session.

The protocol is a JSON line per event, then its data and payload: written
here over a plain socket with the ``wyoming`` package's own event codec,
one connection per request (as Home Assistant does), with a timeout on
every read so that a service that hangs is the same as one that is down.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..audio import pcm
from ..errors import InputError, SpeechServiceError
from .stt import Segment, SttConfig, Transcript
from .tts import SpokenSentence, speak_sentences

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 1600  # 0.1 s of 16 kHz audio an AudioChunk, as Home Assistant's satellites send
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServiceAddress:
    """Where a Wyoming service listens: ``wyoming://host:port``."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> "ServiceAddress":
        """The address in ``url``; an :class:`InputError` that says what is wrong with it otherwise."""
        u = urllib.parse.urlsplit(url.strip())
        if u.scheme not in ("wyoming", "tcp"):
            raise InputError(f"not a Wyoming address: {url!r} (write wyoming://host:port)")
        try:
            port = u.port
        except ValueError:
            raise InputError(f"bad port in {url!r} (write wyoming://host:port)") from None
        if not u.hostname or port is None or u.path not in ("", "/") or u.query:
            raise InputError(f"not a Wyoming address: {url!r} (write wyoming://host:port)")
        return cls(u.hostname, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"wyoming://{host}:{self.port}"

    @property
    def this_machine(self) -> bool:
        """Loopback or ``localhost``: no name is looked up, so any other name counts as another machine."""
        if self.host == "localhost" or self.host.endswith(".localhost"):
            return True
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return ip.is_loopback or (getattr(ip, "ipv4_mapped", None) is not None and ip.ipv4_mapped.is_loopback)


def elsewhere_note(url: str, what: str) -> str | None:
    """One line saying that ``what`` goes to another machine, for a service not on this one; else None."""
    try:
        address = ServiceAddress.parse(url)
    except InputError:
        return None  # not used: the local model answers, and the session says so
    return None if address.this_machine else f"{what} goes to {address} (not this machine)"


@dataclass(frozen=True)
class ServiceInfo:
    """What a service said about itself when asked (Wyoming's describe)."""

    address: ServiceAddress
    programs: tuple[str, ...]  # e.g. ("faster-whisper",) or ("piper",)
    asr_models: tuple[str, ...]  # speech to text: the models it has loaded
    voices: tuple[str, ...]  # text to speech: the voices it has
    round_trip_s: float  # describe asked and answered


class _Exchange:
    """One connection to a service: events out, events in, each read under the timeout."""

    def __init__(self, address: ServiceAddress, timeout: float):
        self.address, self.timeout = address, timeout
        try:
            self._sock = socket.create_connection((address.host, address.port), timeout=timeout)
        except socket.timeout:
            raise SpeechServiceError(f"{address} did not answer within {timeout:g} s") from None
        except OSError as e:
            raise SpeechServiceError(f"{address} cannot be reached: {e.strerror or e}") from None
        self._in = self._sock.makefile("rb")
        self._out = self._sock.makefile("wb")

    def send(self, *events) -> None:
        from wyoming.event import write_event

        try:
            for e in events:
                write_event(e.event(), self._out)
        except OSError as e:
            raise SpeechServiceError(f"{self.address} closed the connection: {e.strerror or e}") from None

    def receive(self, *wanted: str, ignore: tuple[str, ...] = ()):
        """The next event of a ``wanted`` type, skipping those in ``ignore``."""
        from wyoming.event import read_event

        while True:
            try:
                event = read_event(self._in)
            except socket.timeout:
                raise SpeechServiceError(f"{self.address} did not answer within {self.timeout:g} s") from None
            except OSError as e:
                raise SpeechServiceError(f"{self.address} closed the connection: {e.strerror or e}") from None
            if event is None:
                raise SpeechServiceError(
                    f"{self.address} closed the connection or does not speak Wyoming")
            if event.type == "error":
                raise SpeechServiceError(f"{self.address} answered with an error: {event.data.get('text', '')}")
            if event.type in wanted:
                return event
            if event.type not in ignore:
                raise SpeechServiceError(f"{self.address} answered {event.type!r} where {wanted[0]!r} was due")

    def close(self) -> None:
        for f in (self._in, self._out, self._sock):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self) -> "_Exchange":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe(url: str | ServiceAddress, timeout: float = DEFAULT_TIMEOUT_S) -> ServiceInfo:
    """Ask a service what it offers; raises :class:`SpeechServiceError` if it cannot say."""
    from wyoming.info import Describe, Info

    address = url if isinstance(url, ServiceAddress) else ServiceAddress.parse(url)
    t = time.perf_counter()
    with _Exchange(address, timeout) as x:
        x.send(Describe())
        info = Info.from_event(x.receive("info"))
    took = time.perf_counter() - t
    asr = tuple(m.name for p in info.asr if p.installed for m in p.models if m.installed)
    voices = tuple(v.name for p in info.tts if p.installed for v in p.voices if v.installed)
    programs = tuple(p.name for p in [*info.asr, *info.tts] if p.installed)
    return ServiceInfo(address, programs, asr, voices, took)


class RemoteTranscriber:
    """Speech to text by a Wyoming service (``wyoming-faster-whisper`` or any other ASR).

    Built by asking the service what it has, so a wrong address or a
    service of the wrong kind fails here, at the start, in one line.
    """

    def __init__(self, url: str, *, language: str | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        self.address = ServiceAddress.parse(url)
        self.timeout = timeout
        self.info = describe(self.address, timeout)
        if not self.info.asr_models:
            raise SpeechServiceError(f"{self.address} offers no speech to text")
        self.model = self.info.asr_models[0]
        self.name = f"{self.address}/{short_name(self.model)}"
        self.english_only = False  # the service knows; a session's language pin still works
        self.config = SttConfig(language=language)

    def transcribe(self, clip: pcm.Clip, language: str | None = None, *, prompt: str | None = None) -> Transcript:
        """The words in ``clip`` (16 kHz mono), sent to the service in 0.1 s chunks.

        ``prompt`` is not sent: Wyoming has no field for it. The service
        gives text and language only, so the transcript has one segment
        spanning the clip and no confidence of its own (recorded as 1).
        """
        from wyoming.asr import Transcribe
        from wyoming.audio import AudioChunk, AudioStart, AudioStop

        if clip.rate != pcm.RATE:
            raise ValueError("RemoteTranscriber takes 16 kHz clips; resample with audio.pcm first")
        t = time.perf_counter()
        language = language or self.config.language
        samples = np.ascontiguousarray(clip.samples, dtype=np.int16)
        fmt = dict(rate=pcm.RATE, width=2, channels=1)
        with _Exchange(self.address, self.timeout) as x:
            x.send(Transcribe(language=language), AudioStart(**fmt))
            x.send(*(AudioChunk(audio=samples[i : i + CHUNK_SAMPLES].tobytes(), **fmt)
                     for i in range(0, len(samples), CHUNK_SAMPLES)))
            x.send(AudioStop())
            answer = x.receive("transcript", ignore=("transcript-start", "transcript-chunk", "transcript-stop"))
        text = " ".join(str(answer.data.get("text", "")).split())
        said = answer.data.get("language") or language or ""
        segments = (Segment(0.0, clip.duration, text, 1.0),) if text else ()
        return Transcript(text, said, 1.0 if said else 0.0, segments, clip.duration, time.perf_counter() - t)


class RemoteVoice:
    """Text to speech by a Wyoming service (``wyoming-piper`` or any other TTS), a sentence at a time.

    Its audio comes back at the service's rate, width and channels; it is
    turned into ``rate`` (the first answer's rate unless given) int16 mono,
    so that a fallback voice of another rate can follow it in one session.
    """

    def __init__(self, url: str, *, voice: str | None = None, rate: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S):
        self.address = ServiceAddress.parse(url)
        self.timeout = timeout
        self.info = describe(self.address, timeout)
        if not self.info.voices:
            raise SpeechServiceError(f"{self.address} offers no text to speech")
        self.voice = voice  # None: the service's own default voice
        self.name = f"{self.address}/{short_name(voice) if voice else self.info.programs[0]}"
        self.rate = 0  # until set, sentence() answers at the service's own rate
        self.rate = rate or self.sentence("Hello.").rate

    def sentence(self, text: str) -> SpokenSentence:
        """Synthesise one sentence (already split and cleaned)."""
        from wyoming.tts import Synthesize, SynthesizeVoice

        t = time.perf_counter()
        parts, rate, width, channels = [], None, 2, 1
        with _Exchange(self.address, self.timeout) as x:
            x.send(Synthesize(text=text, voice=SynthesizeVoice(name=self.voice) if self.voice else None))
            while True:
                e = x.receive("audio-start", "audio-chunk", "audio-stop")
                if e.type == "audio-stop":
                    break
                rate, width, channels = e.data.get("rate", rate), e.data.get("width", width), \
                    e.data.get("channels", channels)
                if e.type == "audio-chunk" and e.payload:
                    parts.append(e.payload)
        if rate is None:
            raise SpeechServiceError(f"{self.address} sent no audio format")
        samples = _int16_mono(b"".join(parts), int(width), int(channels))
        said = SpokenSentence(text, samples, int(rate), time.perf_counter() - t)
        return said.at(self.rate or said.rate)

    def speak(self, text: str, cancel=None) -> Iterator[SpokenSentence]:
        """Split ``text`` into sentences and yield each one's audio as it is ready."""
        return speak_sentences(self.sentence, text, cancel)


def short_name(model: str) -> str:
    """A model's name without the path a service may report it by."""
    return model.rstrip("/").rsplit("/", 1)[-1].removesuffix(".onnx")


def _int16_mono(data: bytes, width: int, channels: int) -> np.ndarray:
    if width == 2:
        x = np.frombuffer(data[: len(data) // (2 * channels) * 2 * channels], np.int16)
    elif width == 4:
        x = (np.frombuffer(data[: len(data) // (4 * channels) * 4 * channels], np.int32) >> 16).astype(np.int16)
    elif width == 1:
        x = ((np.frombuffer(data[: len(data) // channels * channels], np.uint8).astype(np.int16) - 128) << 8)
    else:
        raise SpeechServiceError(f"audio {width * 8}-bit: not a width this program reads")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return x.astype(np.int16, copy=False)
