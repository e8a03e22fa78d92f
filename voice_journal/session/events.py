"""What a session reports as it goes: small frozen values, one per thing that happened."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field


from .timings import HeardTimings, ReplyTimings

log = logging.getLogger(__name__)

# -- what a session reports as it goes --------------------------------------


class State(str, enum.Enum):
    """Where a live session is, as a status line shows it (equal to its plain name: ``"listening"``)."""

    STARTING = "starting"
    LISTENING = "listening"  # waiting for the person
    HEARING = "hearing"  # the person is talking
    THINKING = "thinking"  # their turn is over; no reply audio yet
    SPEAKING = "speaking"  # the companion's voice is playing
    CLOSING = "closing"  # the last words of the session
    ENDED = "ended"


@dataclass(frozen=True)
class UserSpoke:
    session_id: int
    idx: int
    text: str
    start: float
    end: float
    language: str


@dataclass(frozen=True)
class CompanionReplied:
    session_id: int
    idx: int
    text: str
    timings: ReplyTimings
    partial: bool = False


@dataclass(frozen=True)
class Skipped:
    start: float
    end: float
    reason: str


@dataclass(frozen=True)
class SafetyAlert:
    """The safety check was worried by what the person said (see :mod:`companion.safety`).

    On "crisis" the companion speaks ``message`` instead of a reply: print it too.
    """

    session_id: int
    idx: int  # the person's turn
    level: str  # "concern" or "crisis"
    reasons: tuple[str, ...]
    message: str | None = None


@dataclass(frozen=True)
class ModeChanged:
    """The person asked for another mode ("let's do a check-in")."""

    session_id: int
    mode: str


SessionEvent = UserSpoke | CompanionReplied | Skipped | SafetyAlert | ModeChanged


@dataclass(frozen=True)
class SessionResult:
    session_id: int
    user_turns: int
    replies: int
    timings: tuple[HeardTimings | ReplyTimings, ...] = field(default=())  # each turn's, in order


@dataclass(frozen=True)
class Listening:
    """The companion is ready for the person to talk."""

    session_id: int


@dataclass(frozen=True)
class BargedIn:
    """The person spoke over the companion, which stopped."""

    session_id: int
    heard_s: float  # how much of the reply was played
    stop_s: float  # from the start of their speech to silence


LiveEvent = UserSpoke | CompanionReplied | Skipped | SafetyAlert | ModeChanged | Listening | BargedIn
