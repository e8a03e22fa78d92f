"""A journaling session: the one place where the stages are wired together.

Its parts, one job each:

* :mod:`.engines`: the models a session runs on, loaded once;
* :mod:`.events`: what a session reports as it goes (``UserSpoke``, ``CompanionReplied``...);
* :mod:`.timings`: how long each part of a turn took, typed (stored with the turn as JSON);
* :mod:`.speaker`: one reply, from the model's words to the voice, sentence by sentence;
* :mod:`.memory`: what the person said in other sessions that relates to now;
* :mod:`.recorder`: the one place a turn becomes a record in the journal;
* :mod:`.file`: a session from a recording (``voice-journal session --input``);
* :mod:`.live`: a session on a microphone and a speaker, in real time;
* :mod:`.entries`: what is not a conversation: transcripts of files, typed entries, imports.

From a file the data flows::

    pcm.stream ──blocks──▶ Segmenter ──Utterance──▶ Transcriber ──Transcript──▶ archive: user turn
                                                                   │
                                                                   ▼
     Conversation (safety check, mode step, mood, memory) ──Plan──▶ fixed words, or
                                          messages ──▶ LLM ──deltas──▶ SentenceSplitter ─▶ ReplyGate
                                                                        (length, questions) │ sentences
                                                                          queue ◀───────────┘
                                                                            │
                                               tts thread: Voice ──audio──▶ sink (WAV / speaker)
                                                                            │
                                                          archive: assistant turn (text, audio, timings)

The LLM streams on the caller's thread while a second thread speaks each
finished sentence, so the first sentence is heard while the second is
being written. Each turn is committed to the archive the moment it is over.
"""

from .engines import Engines, load_engines, load_safety_net, load_transcriber
from .entries import (MAX_WRITTEN_CHARS, FileTranscript, Imported, file_hash, file_utterances, import_recording,
                      transcribe_file, write_entry)
from .events import (BargedIn, CompanionReplied, LiveEvent, Listening, ModeChanged, SafetyAlert, SessionEvent,
                     SessionResult, Skipped, State, UserSpoke)
from .file import FileSession
from .live import LiveOptions, LiveSession
from .memory import MEMORY_MIN_SCORE, MEMORY_TURNS, recaller
from .recorder import Recorder
from .speaker import FALLBACK_REPLY, SpokenReply, reply_options, speak_reply, speak_reply_text
from .timings import HeardTimings, ReplyTimings
from .wake import wait_for_wake

__all__ = [
    "BargedIn", "CompanionReplied", "Engines", "FALLBACK_REPLY", "FileSession", "FileTranscript", "HeardTimings", "Imported",
    "LiveEvent", "LiveOptions", "LiveSession", "Listening", "MAX_WRITTEN_CHARS", "MEMORY_MIN_SCORE", "MEMORY_TURNS",
    "ModeChanged", "Recorder", "ReplyTimings", "SafetyAlert", "SessionEvent", "SessionResult", "Skipped", "State", "SpokenReply", "UserSpoke",
    "file_hash", "file_utterances", "import_recording", "load_engines", "load_safety_net", "load_transcriber",
    "recaller", "reply_options", "speak_reply", "speak_reply_text", "transcribe_file", "wait_for_wake", "write_entry",
]
