"""Regenerate samples/demo/journal.flac: a four-turn journaling monologue.

Spoken by the Piper voice en_US-joe-medium (so it is reproducible and free of
any recording licence), 1.5 s of quiet between turns, a faint noise floor so
the segmenter sees a room rather than digital silence, 22,050 Hz mono.

    .venv/bin/python samples/make_demo.py
"""

from pathlib import Path

import numpy as np
import soundfile as sf

from voice_journal import models
from voice_journal.speech.tts import Voice

TURNS = [
    "Today was harder than I expected. I had a long argument with my brother about "
    "our mother's care, and I left feeling like nobody listens to me.",
    "I keep replaying what I said. Maybe I was too sharp with him, but I am so tired "
    "of being the one who organizes everything.",
    "What I really want is for us to share the load. I think I need to tell him that, "
    "calmly, without blaming him.",
    "Okay. I think that is enough for today. Thank you for listening.",
]
PAUSE_S = 1.5

if __name__ == "__main__":
    voice = Voice(models.resolve("joe-medium", kind="tts"))
    rng = np.random.default_rng(7)
    pieces = [np.zeros(int(0.8 * voice.rate), np.int16)]
    for turn in TURNS:
        for s in voice.speak(turn):
            pieces.append(s.samples)
        pieces.append(np.zeros(int(PAUSE_S * voice.rate), np.int16))
    audio = np.concatenate(pieces).astype(np.float32)
    audio += rng.normal(0, 32768 * 10 ** (-62 / 20), len(audio))  # a quiet room, -62 dBFS
    out = Path(__file__).with_name("demo") / "journal.flac"
    sf.write(out, np.clip(audio, -32768, 32767).astype(np.int16), voice.rate, subtype="PCM_16")
    print(f"wrote {out} ({len(audio) / voice.rate:.1f} s)")
