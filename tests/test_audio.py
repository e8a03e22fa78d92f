"""Audio files in any format to 16 kHz mono, FLAC for the archive, bad files."""

import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import LIBRIVOX, SAMPLES, librivox_clips
from voice_journal.audio import pcm
from voice_journal.errors import AudioError

CLIP = LIBRIVOX / "0870.flac"


def encode(dst, codec: str, rate: int, channels: int, src=CLIP):
    """Write ``src`` with FFmpeg's encoder ``codec`` (mp3, aac, libopus) via PyAV."""
    x, r = sf.read(src, dtype="float32")
    y = soxr.resample(x, r, rate)
    y = np.stack([y, y * 0.8], axis=1) if channels == 2 else y[:, None]
    with av.open(str(dst), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.layout = "stereo" if channels == 2 else "mono"
        fmt = s.codec_context.format.name
        n = s.codec_context.frame_size or 1024
        for i in range(0, len(y), n):
            block = y[i : i + n]
            arr = np.ascontiguousarray(block.T) if fmt.endswith("p") else np.ascontiguousarray(block).reshape(1, -1)
            if fmt.startswith("s16"):
                arr = (arr * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                arr = (arr * 2147483647).astype(np.int32)
            frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=s.layout.name)
            frame.sample_rate = rate
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return dst


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    x, r = sf.read(CLIP, dtype="float32")
    sf.write(d / "8k.wav", soxr.resample(x, r, 8000), 8000, subtype="PCM_16")
    sf.write(d / "48k_stereo.wav", np.stack([soxr.resample(x, r, 48000)] * 2, axis=1), 48000, subtype="FLOAT")
    sf.write(d / "44k.ogg", soxr.resample(x, r, 44100), 44100, format="OGG", subtype="VORBIS")
    sf.write(d / "22k.flac", soxr.resample(x, r, 22050), 22050)
    encode(d / "48k_stereo.mp3", "mp3", 48000, 2)
    encode(d / "44k_stereo.m4a", "aac", 44100, 2)
    encode(d / "48k.opus", "libopus", 48000, 1)
    return d


@pytest.mark.parametrize("name", ["8k.wav", "48k_stereo.wav", "44k.ogg", "22k.flac", "48k_stereo.mp3",
                                  "44k_stereo.m4a", "48k.opus"])
def test_any_rate_channels_and_format_load_as_16k_mono(formats, name):
    ref = pcm.load(CLIP)
    clip = pcm.load(formats / name)
    assert clip.rate == 16_000 and clip.samples.dtype == np.int16 and clip.samples.ndim == 1
    # Lossy codecs pad a little: within 60 ms of the source.
    assert clip.duration == pytest.approx(ref.duration, abs=0.06)
    if name.endswith((".wav", ".flac")):
        # Lossless paths keep the waveform, up to the resampler's error.
        n = min(len(ref.samples), len(clip.samples))
        corr = np.corrcoef(ref.samples[:n].astype(float), clip.samples[:n].astype(float))[0, 1]
        assert corr > 0.97


def test_flac_round_trip_is_exact():
    clip = pcm.load(CLIP)
    back = pcm.from_flac(pcm.to_flac(clip))
    assert back.rate == clip.rate
    assert np.array_equal(back.samples, clip.samples)
    assert len(pcm.to_flac(clip)) < clip.samples.nbytes  # and smaller than raw PCM


def test_a_48k_recording_of_real_speech_loads(formats):
    clip = pcm.load(SAMPLES / "alsa" / "front_center.wav")
    assert clip.duration == pytest.approx(1.428, abs=0.01)


def _write(d, name, data):
    path = d / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.wav", "no such file"),
    (lambda d: d, "is a directory"),
    (lambda d: _write(d, "empty.wav", b""), "is empty"),
    (lambda d: _write(d, "text.wav", b"these are not the samples you are looking for\n"), "not a readable audio file"),
    (lambda d: _write(d, "noise.flac", np.random.default_rng(5).bytes(4096)), "not a readable audio file"),
    (lambda d: _write(d, "cut.wav", _wav_bytes()[:30]), "not a readable audio file"),
    (lambda d: _write(d, "trunc.wav", _wav_bytes()[:100_000]), "truncated WAV"),  # a recorder that died
])
def test_bad_files_raise_one_clear_line(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(AudioError) as e:
        pcm.load(path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def _wav_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, pcm.load(CLIP).samples, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_streaming_resampler_matches_whole_file_resampling(formats):
    blocks = list(pcm.stream(formats / "8k.wav", block_seconds=0.37))
    assert len(blocks) > 5
    streamed = np.concatenate(blocks)
    whole = pcm.load(formats / "8k.wav")
    assert np.array_equal(streamed, whole.samples)


def test_two_hour_file_streams_in_bounded_memory(tmp_path):
    """Two hours of a quiet room with two sentences in it, read through the CLI."""
    path = tmp_path / "two_hours.flac"
    speech = {30 * 60: librivox_clips()[1], 105 * 60: librivox_clips()[4]}
    room = np.random.default_rng(1).normal(0, 3, 60 * 16000).astype(np.int16)  # one minute, again and again
    with sf.SoundFile(path, "w", 16000, 1, "PCM_16", format="FLAC") as f:
        for minute in range(120):
            block = room.copy()
            if minute * 60 in speech:
                s = pcm.load(speech[minute * 60][0]).samples
                block[16000 : 16000 + len(s)] = s
            f.write(block)
    code = (
        "import json, resource, sys\n"
        "from voice_journal import models\n"
        "from voice_journal.session import transcribe_file\n"
        "from voice_journal.speech.stt import Transcriber\n"
        "t = Transcriber(models.resolve('whisper-tiny.en', kind='stt'))\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"r = transcribe_file(t, {str(path)!r})\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'before_kb': before, 'after_kb': after, 'duration': r.duration,\n"
        "  'segments': [[s.start, s.end, s.text] for s in r.segments]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    import json

    r = json.loads(out.stdout)
    assert r["duration"] == pytest.approx(7200, abs=1)
    # 2 h of 16 kHz int16 is 230 MB: reading it all would show; streaming grows by little.
    assert (r["after_kb"] - r["before_kb"]) < 120_000, r
    starts = [s[0] for s in r["segments"]]
    assert any(abs(s - (30 * 60 + 1)) < 1.5 for s in starts), r["segments"]
    assert any(abs(s - (105 * 60 + 1)) < 1.5 for s in starts), r["segments"]
    text = " ".join(s[2] for s in r["segments"]).lower()
    assert "young man" in text and "amiable himself" in text


def test_the_wake_phrase_starts_a_session_and_nothing_else_does(voice):
    """openWakeWord's "hey jarvis" (trained on Piper voices) on Piper's joe voice, and on real readers."""
    from voice_journal.audio.wake import WakeWord

    wake = WakeWord.load("hey-jarvis")

    def heard(samples) -> bool:
        wake.reset()
        return any(wake.heard(samples[i:i + 480]) for i in range(0, len(samples), 480))  # 30 ms blocks

    def said(text):
        s = voice.sentence(text)
        quiet = np.zeros(8000, np.int16)
        return np.concatenate([quiet, pcm.resampled(s.samples, s.rate, pcm.RATE), quiet, quiet])

    assert heard(said("Hey Jarvis.")) and heard(said("Hey Jarvis, I'd like to talk."))
    assert not any(heard(said(t)) for t in ("Hey, how are you doing today?", "Hey there.",
                                            "I went for a long walk by the river this morning."))
    assert not any(heard(pcm.load(p).samples) for p, _ in librivox_clips())
