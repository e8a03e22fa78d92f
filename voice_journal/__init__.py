"""voice-journal: a voice-first, local-first journaling companion.

A person talks; voice-journal listens (webrtcvad), transcribes
(faster-whisper), answers as a reflective companion through a local model
(Ollama, or llama.cpp in-process), speaks the reply (Piper) and archives
every turn in DuckDB. Nothing leaves the machine.
"""

__version__ = "0.1.0"
