"""Both LLM backends for real: llama.cpp in-process, and the official ollama
client over HTTP against the Ollama-API stand-in on loopback."""

import subprocess
import sys
import threading

import httpx
import ollama
import pytest

from voice_journal.errors import LLMError, LLMModelNotFound, LLMUnavailable
from voice_journal.llm.base import GenerationOptions, Message
from voice_journal.llm.ollama import OllamaLLM
from voice_journal.llm.select import open_llm

CHAT = [Message("system", "You are a kind listener. Answer in one short sentence."),
        Message("user", "I had a rough day at work today.")]


# -- embedded -----------------------------------------------------------------


def test_embedded_streams_text_and_reports_usage(small_llm):
    reply = small_llm.stream(CHAT, GenerationOptions(max_tokens=24))
    deltas = list(reply)
    assert len(deltas) > 1 and "".join(deltas).strip()
    assert reply.usage.completion_tokens <= 24 and reply.usage.prompt_tokens > 10
    assert reply.usage.stopped in ("stop", "length")


def test_embedded_keeps_its_kv_cache_across_turns(small_llm):
    # Seeded: what the model writes at random differs every run, and once (in about 20 suite
    # runs, 2026-12-03) the reply, sent back as text, no longer matched the tokens it was written
    # as, so its own tokens could not come from the cache. The test is about the cache.
    first = small_llm.stream(CHAT, GenerationOptions(max_tokens=16, seed=1))
    said = first.text()
    follow = CHAT + [Message("assistant", said), Message("user", "My manager yelled at me.")]
    second = small_llm.stream(follow, GenerationOptions(max_tokens=16, seed=1))
    second.text()
    # Only the new turn is evaluated: the whole earlier conversation came from the cache.
    assert second.usage.cached_tokens >= first.usage.prompt_tokens
    assert second.usage.prompt_tokens - second.usage.cached_tokens < 30


def test_embedded_reuses_its_cache_when_the_dialog_drops_old_turns(small_llm):
    """A long session drops its oldest turns (Dialog keeps ~2,500 tokens). That changed the
    prompt right after the system prompt, so every later token was evaluated again: a 36 s
    silence at 2,800 tokens in a 20-minute session. The kept turns are now shifted in the
    KV cache instead, and only the new turn is evaluated."""
    from voice_journal.companion.dialog import Dialog

    dialog = Dialog(system="You are a kind listener. Answer in one short sentence.", max_chars=1500)
    trims = 0
    for day in range(9):
        before = len(dialog.turns)
        messages = dialog.add_user(f"Day {day}: I walked by the river again after work and kept thinking about my "
                                   "sister, the garden we planted together last spring, and whether I should call "
                                   "her this weekend or wait until she calls me first.")
        reply = small_llm.stream(messages, GenerationOptions(max_tokens=12, temperature=0.0))
        dialog.add_assistant(reply.text())
        if len(dialog.turns) < before + 2:  # this turn dropped old ones
            trims += 1
            assert reply.usage.prompt_tokens - reply.usage.cached_tokens < 80, reply.usage
    assert trims >= 1


def test_embedded_cancel_stops_generation_at_the_next_token(small_llm):
    # Counted in tokens, not seconds: how long a token takes depends on how busy the machine is.
    reply = small_llm.stream(CHAT, GenerationOptions(max_tokens=400, temperature=1.0))
    got = 0
    for _ in reply:
        got += 1
        if got == 3:
            canceller = threading.Thread(target=reply.cancel)  # from another thread, as barge-in does
            canceller.start()
            canceller.join()
    assert reply.usage.stopped == "cancelled"
    assert got == 3  # nothing handed on once cancelled
    assert reply.usage.completion_tokens < 100  # the model stopped, far short of its 400
    # The model is usable again right after.
    assert small_llm.stream(CHAT, GenerationOptions(max_tokens=8)).text()


EXIT_MID_REPLY = """
import sys
from voice_journal import models
from voice_journal.llm.base import GenerationOptions, Message
from voice_journal.llm.embedded import EmbeddedLLM

llm = EmbeddedLLM(models.resolve("smollm2-135m", kind="llm"), threads=1)
reply = iter(llm.stream([Message("user", "Tell me a long story about the sea.")], GenerationOptions(max_tokens=400)))
next(reply)  # generating, as when Ctrl-C lands mid-reply
llm.close()
sys.exit(3)
"""


def test_closing_the_embedded_model_mid_reply_lets_the_process_exit_cleanly():
    # Left running into the interpreter's exit, llama.cpp's thread aborts the process
    # (SIGABRT here, SIGSEGV on CI): close() stops the generation and waits for it.
    r = subprocess.run([sys.executable, "-c", EXIT_MID_REPLY], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, (r.returncode, r.stderr[-2000:])


# -- ollama, over HTTP ----------------------------------------------------------


def test_ollama_chat_streams_through_the_official_client(ollama_server):
    llm = OllamaLLM("smollm2-test", ollama_server.host)  # ":latest" is implied, as in Ollama
    reply = llm.stream(CHAT, GenerationOptions(max_tokens=20))
    deltas = list(reply)
    assert len(deltas) > 1 and "".join(deltas).strip()
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0
    assert ("POST", "/api/show") in ollama_server.requests and ("POST", "/api/chat") in ollama_server.requests
    assert llm.models() == ["smollm2-test:latest"]


def test_ollama_unknown_model_says_ollama_pull(ollama_server):
    with pytest.raises(LLMModelNotFound, match=r"ollama pull llama9:70b"):
        OllamaLLM("llama9:70b", ollama_server.host)
    # The same at chat time, if the model vanished after the check.
    llm = OllamaLLM("llama9:70b", ollama_server.host, check=False)
    with pytest.raises(LLMModelNotFound, match="ollama pull"):
        llm.stream(CHAT).text()


def test_ollama_error_line_mid_stream_becomes_llm_error(ollama_server):
    llm = OllamaLLM("smollm2-test:latest", ollama_server.host)
    ollama_server.fail_after = 3
    try:
        reply = llm.stream(CHAT, GenerationOptions(max_tokens=64, seed=7))
        got = []
        with pytest.raises(LLMError, match="unexpected EOF"):
            for d in reply:
                got.append(d)
        # What came before the error was delivered: three deltas, or all of a reply shorter than
        # that (unseeded, SmolLM once answered in fewer, and the stream ended without an error).
        assert 1 <= len(got) <= 3 and "".join(got).strip()
    finally:
        ollama_server.fail_after = None


def test_raw_client_shapes_match_ollama(ollama_server):
    """The stand-in answers in the shapes the real client parses."""
    client = ollama.Client(host=ollama_server.host)
    chunks = list(client.chat(model="smollm2-test", messages=[m.as_dict() for m in CHAT], stream=True,
                              options={"num_predict": 8}))
    assert all(c.message.role == "assistant" for c in chunks)
    assert chunks[-1].done and chunks[-1].done_reason in ("stop", "length")
    assert chunks[-1].eval_count and chunks[-1].total_duration > 0
    whole = client.chat(model="smollm2-test", messages=[m.as_dict() for m in CHAT], options={"num_predict": 8})
    assert whole.done and whole.message.content
    with pytest.raises(ollama.ResponseError) as e:
        client.show("nope")
    assert e.value.status_code == 404 and "not found, try pulling it first" in e.value.error


def test_refused_port_plain_call(free_port):
    with pytest.raises(LLMUnavailable, match=f"127.0.0.1:{free_port}"):
        OllamaLLM("qwen2.5:1.5b", f"http://127.0.0.1:{free_port}")


def test_refused_port_streaming_call(free_port):
    # The client raises httpx.ConnectError (not ConnectionError) here, at the first chunk.
    raw = ollama.Client(host=f"http://127.0.0.1:{free_port}").chat(model="x", messages=[], stream=True)
    with pytest.raises(httpx.ConnectError):
        next(iter(raw))
    llm = OllamaLLM("qwen2.5:1.5b", f"http://127.0.0.1:{free_port}", check=False)
    with pytest.raises(LLMUnavailable, match="lost Ollama"):
        llm.stream(CHAT).text()


# -- auto -------------------------------------------------------------------------


def test_auto_uses_ollama_when_it_has_the_model(ollama_server):
    llm = open_llm("auto", ollama_model="smollm2-test", ollama_host=ollama_server.host,
                   embedded_model="smollm2-135m")
    assert llm.backend == "ollama"


@pytest.mark.parametrize("why", ["down", "missing model"])
def test_auto_falls_back_to_the_embedded_model(ollama_server, free_port, why, caplog):
    host = f"http://127.0.0.1:{free_port}" if why == "down" else ollama_server.host
    with caplog.at_level("INFO", logger="voice_journal"):
        llm = open_llm("auto", ollama_model="not-there:1b", ollama_host=host, embedded_model="smollm2-135m")
    try:
        assert llm.backend == "embedded"
        assert "using the embedded model smollm2-135m" in caplog.text
        assert llm.stream(CHAT, GenerationOptions(max_tokens=6)).text()
    finally:
        llm.close()


def test_forced_ollama_backend_does_not_fall_back(free_port):
    with pytest.raises(LLMUnavailable):
        open_llm("ollama", ollama_model="x", ollama_host=f"http://127.0.0.1:{free_port}", embedded_model="smollm2-135m")


def test_unknown_backend_is_refused():
    with pytest.raises(LLMError, match="unknown LLM backend"):
        open_llm("gpt", ollama_model="x", ollama_host="http://127.0.0.1:1", embedded_model="smollm2-135m")


@pytest.mark.integration  # a real model
def test_the_embedded_model_holds_no_pages_of_its_file_after_loading_and_still_writes():
    # llama.cpp copies most weights out of the mapped file at load; the pages read for the copy
    # are given back, and what is still read from the file comes back from the page cache.
    from voice_journal import models
    from voice_journal.llm.embedded import EmbeddedLLM

    path = models.resolve("smollm2-135m", kind="llm")
    llm = EmbeddedLLM(path, n_ctx=1024, threads=1)
    try:
        assert _resident_kb_of(path) == 0
        reply = llm.stream(CHAT, GenerationOptions(max_tokens=12, seed=1))
        assert reply.text().strip() and reply.usage.completion_tokens > 0
        assert _resident_kb_of(path) > 0  # the layers read from the file came back by themselves
    finally:
        llm.close()


def _resident_kb_of(path) -> int:
    """This process's resident kilobytes of the file's mappings (/proc/self/smaps)."""
    import os

    real, total, inside = os.path.realpath(path), 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
                inside = len(fields) >= 6 and fields[5] == real
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total
