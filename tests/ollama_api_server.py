"""An Ollama-API server on 127.0.0.1, written for the tests, backed by a real model.

No Ollama binary can be installed on the machines this project is tested
on, so the official ``ollama`` client is exercised against this stand-in. It
follows the shapes Ollama itself serves (see shared/DESIGN.md):

* ``GET /api/tags`` and ``GET /api/version``;
* ``POST /api/show``: the model's details, or ``404 {"error": "model \\"x\\" not
  found, try pulling it first"}``;
* ``POST /api/chat``: NDJSON over chunked transfer encoding, ``message`` on
  every line, ``done: true`` with ``done_reason`` and the timing fields
  (nanoseconds) on the last; ``"stream": false`` answers one JSON object;
* an ``{"error": ...}`` line mid-stream when ``fail_after`` tokens were sent
  (or at the end of a shorter reply), as Ollama does when its runner dies.

Replies come from a real GGUF model through :class:`EmbeddedLLM`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from voice_journal.llm.base import GenerationOptions, Message


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


class OllamaAPIServer:
    """Serve ``model_name`` from ``llm`` on a free loopback port until :meth:`stop`."""

    def __init__(self, llm, model_name: str = "smollm2-test:latest"):
        self.llm = llm
        self.model_name = model_name
        self.fail_after: int | None = None  # tokens before a mid-stream error
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}")

            def do_GET(self):
                outer.requests.append(("GET", self.path))
                if self.path == "/api/tags":
                    self._json(200, {"models": [outer._model_entry()]})
                elif self.path == "/api/version":
                    self._json(200, {"version": "0.12.0"})
                else:
                    self._json(404, {"error": "404 page not found"})

            def do_POST(self):
                outer.requests.append(("POST", self.path))
                body = self._body()
                if self.path == "/api/show":
                    if not outer._known(body.get("model", "")):
                        self._json(404, {"error": f"model \"{body.get('model')}\" not found, try pulling it first"})
                    else:
                        self._json(200, outer._show())
                elif self.path == "/api/chat":
                    self._chat(body)
                else:
                    self._json(404, {"error": "404 page not found"})

            def _chunk(self, obj: dict) -> None:
                data = (json.dumps(obj) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _chat(self, body: dict) -> None:
                model = body.get("model", "")
                if not outer._known(model):
                    self._json(404, {"error": f"model \"{model}\" not found, try pulling it first"})
                    return
                opts = body.get("options") or {}
                options = GenerationOptions(
                    max_tokens=int(opts.get("num_predict", 128)),
                    temperature=float(opts.get("temperature", 0.8)),
                    top_p=float(opts.get("top_p", 0.9)),
                    repeat_penalty=float(opts.get("repeat_penalty", 1.1)),
                    seed=int(opts["seed"]) if "seed" in opts else None,
                    # Ollama's "format": "json" or a JSON schema, enforced by a grammar as Ollama does.
                    json_schema=({"type": "object"} if body.get("format") == "json" else body.get("format") or None),
                )
                messages = [Message(m["role"], m["content"]) for m in body.get("messages", [])]
                t0 = time.perf_counter_ns()
                reply = outer.llm.stream(messages, options)
                if body.get("stream", True) is False:
                    text = reply.text()
                    self._json(200, {"model": model, "created_at": _now(),
                                     "message": {"role": "assistant", "content": text},
                                     "done": True, **outer._final(reply.usage, t0)})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                try:
                    for delta in reply:
                        if outer.fail_after is not None and sent >= outer.fail_after:
                            reply.cancel()
                            self._chunk({"error": "an error was encountered while running the model: unexpected EOF"})
                            break
                        self._chunk({"model": model, "created_at": _now(),
                                     "message": {"role": "assistant", "content": delta}, "done": False})
                        sent += 1
                    else:
                        if outer.fail_after is not None:  # a reply shorter than fail_after: the runner dies at its end
                            self._chunk({"error": "an error was encountered while running the model: unexpected EOF"})
                        else:
                            self._chunk({"model": model, "created_at": _now(),
                                         "message": {"role": "assistant", "content": ""}, "done": True,
                                         **outer._final(reply.usage, t0)})
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    reply.cancel()  # the client hung up: stop generating, as Ollama does

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.host = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ollama-api", daemon=True)

    def _known(self, name: str) -> bool:
        return name in (self.model_name, self.model_name.removesuffix(":latest"))

    def _model_entry(self) -> dict:
        return {"name": self.model_name, "model": self.model_name, "modified_at": _now(), "size": 98362432,
                "digest": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                "details": {"format": "gguf", "family": "llama", "parameter_size": "135M",
                            "quantization_level": "Q4_1"}}

    def _show(self) -> dict:
        return {"modelfile": f"FROM {self.model_name}", "parameters": "", "template": "{{ .Prompt }}",
                "details": self._model_entry()["details"], "model_info": {"general.architecture": "llama"},
                "capabilities": ["completion"], "modified_at": _now()}

    @staticmethod
    def _final(usage, t0: int) -> dict:
        total = time.perf_counter_ns() - t0
        first = int((usage.first_token_s if usage else 0) * 1e9)
        return {"done_reason": "stop" if not usage or usage.stopped in ("stop", "") else usage.stopped,
                "total_duration": total, "load_duration": 0,
                "prompt_eval_count": usage.prompt_tokens if usage else 0, "prompt_eval_duration": first,
                "eval_count": usage.completion_tokens if usage else 0, "eval_duration": total - first}

    def start(self) -> "OllamaAPIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


if __name__ == "__main__":  # run it by hand: python tests/ollama_api_server.py
    from voice_journal import models
    from voice_journal.llm.embedded import EmbeddedLLM

    server = OllamaAPIServer(EmbeddedLLM(models.resolve("smollm2-135m", kind="llm"))).start()
    print(f"Ollama-API stand-in on {server.host} serving {server.model_name}")
    threading.Event().wait()
