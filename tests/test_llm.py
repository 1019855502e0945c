"""LLM backends with the real embedded model and a real llama.cpp server; faults from a loopback server."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from curator.llm import AnswerCache, BackendConfig, grade_cached, make_backend, validate

pytest.importorskip("llama_cpp")
CHOICES = ["0", "1", "2", "3", "4", "5"]
PREFIX = (
    "Rate each extract for its educational value from 0 (none) to 5 (excellent).\n\n"
    "Extract: Photosynthesis turns light, water and carbon dioxide into glucose and oxygen in the chloroplasts.\nScore: 4\n\n"
    "Extract: Cheap pills!!! Click here to win a free phone. Home | Contact | Privacy\nScore: 0\n\n"
)
DOCS = [
    "Extract: The water cycle describes how water evaporates, condenses into clouds and falls as rain.\nScore: ",
    "Extract: Buy now!!! Best casino bonus, free spins, limited offer, click here.\nScore: ",
    "Extract: Fractions name parts of a whole: in 3/4 the denominator 4 says the whole has four equal parts.\nScore: ",
]


@pytest.fixture(scope="module")
def embedded():
    backend = make_backend(BackendConfig())
    yield backend
    backend.close()


def test_embedded_gives_a_distribution_over_the_grades(embedded):
    answers = embedded.grade(PREFIX, DOCS, CHOICES)
    for answer in answers:
        assert answer.ok and answer.error is None
        assert abs(sum(answer.distribution.values()) - 1) < 1e-9
        assert answer.mass > 0.5  # the digits carry most of the next-token mass
        assert 0 <= answer.expected <= 5
        assert validate(answer) is answer and answer.ok  # finite probabilities that sum to 1, as the cache checks
        assert json.loads(answer.raw)  # the top tokens, recorded
    assert answers[0].expected > answers[1].expected  # water cycle above casino spam


def test_prefix_reuse_gives_the_same_answer_as_a_fresh_prompt(embedded):
    from curator.llm.embedded import EmbeddedBackend

    reused = embedded.grade(PREFIX, DOCS, CHOICES)
    fresh = EmbeddedBackend(BackendConfig(), reuse_prefix=False)
    try:
        naive = fresh.grade(PREFIX, DOCS, CHOICES)
    finally:
        fresh.close()
    for a, b in zip(reused, naive):
        for c in CHOICES:
            assert a.distribution[c] == pytest.approx(b.distribution[c], abs=2e-3)


def test_answers_are_cached_on_disk(embedded, tmp_path):
    cache = AnswerCache(tmp_path / "cache.sqlite")
    first = grade_cached(embedded, cache, PREFIX, DOCS[:2], CHOICES)
    again = grade_cached(embedded, cache, PREFIX, DOCS[:2], CHOICES)
    assert not any(a.cached for a in first) and all(a.cached for a in again)
    assert [a.distribution for a in first] == [a.distribution for a in again]
    cache.close()
    reopened = AnswerCache(tmp_path / "cache.sqlite")
    assert all(a.cached for a in grade_cached(embedded, reopened, PREFIX, DOCS[:2], CHOICES))


def test_a_document_longer_than_the_context_is_recorded_not_guessed():
    backend = make_backend(BackendConfig(n_ctx=256))
    try:
        [answer] = backend.grade(PREFIX, ["Extract: " + "word " * 2000 + "\nScore: "], CHOICES)
    finally:
        backend.close()
    assert not answer.ok and answer.error.startswith("too long")


def test_a_document_with_a_lone_surrogate_is_graded(embedded):
    [answer] = embedded.grade(PREFIX, [DOCS[0].replace("water cycle", "water \ud800 cycle")], CHOICES)
    assert answer.ok and answer.error is None


def test_a_failed_decode_is_recorded_and_the_next_document_is_graded_afresh(embedded, monkeypatch):
    real = embedded._evaluate
    monkeypatch.setattr(embedded, "_evaluate", lambda *a: (_ for _ in ()).throw(RuntimeError("llama_decode returned -3")))
    [failed] = embedded.grade(PREFIX, DOCS[:1], CHOICES)
    assert not failed.ok and failed.error == "model failed: RuntimeError: llama_decode returned -3"
    monkeypatch.setattr(embedded, "_evaluate", real)
    assert embedded._prefix is None  # the KV cache is not trusted after a failure
    [graded] = embedded.grade(PREFIX, DOCS[:1], CHOICES)
    assert graded.ok and graded.expected == pytest.approx(embedded.grade(PREFIX, DOCS[:1], CHOICES)[0].expected)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(embedded, tmp_path_factory):
    """llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) with the same model, on loopback."""
    pytest.importorskip("uvicorn")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = open(log_path, "wb")  # a file, not a pipe: llama.cpp logs enough to fill a pipe and block
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", embedded.path, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--logits_all", "True", "--model_alias", "gemma"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text()[-2000:]) from None
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"llama.cpp server did not start: {log_path.read_text()[-2000:]}")
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_openai_backend_against_a_real_llama_cpp_server(llama_server, embedded):
    backend = make_backend(BackendConfig(type="openai", base_url=llama_server, model="gemma", concurrency=2))
    remote = backend.grade(PREFIX, DOCS, CHOICES)
    local = embedded.grade(PREFIX, DOCS, CHOICES)
    for r, e in zip(remote, local):
        assert r.ok, r.error
        # the same model behind HTTP gives (nearly) the same grade
        assert r.expected == pytest.approx(e.expected, abs=0.35)


def test_a_real_server_refusing_a_prompt_is_a_recorded_failure_and_the_rest_is_graded(llama_server, tmp_path):
    backend = make_backend(BackendConfig(type="openai", base_url=llama_server, model="gemma", max_retries=0))
    cache = AnswerCache(tmp_path / "c.sqlite")
    too_long = "Extract: " + "word " * 3000 + "\nScore: "  # more tokens than the server's 2048 context
    refused, graded = grade_cached(backend, cache, PREFIX, [too_long, DOCS[0]], CHOICES)
    assert refused.distribution is None and refused.expected is None
    assert refused.error.startswith("request failed: HTTP"), refused.error
    assert graded.ok, graded.error


class _Faulty(http.server.BaseHTTPRequestHandler):
    """A loopback endpoint speaking the completions protocol, misbehaving on purpose."""

    calls: dict[str, int] = {}

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))  # the request body, unused
        mode = self.path.split("/")[1]
        _Faulty.calls[mode] = _Faulty.calls.get(mode, 0) + 1
        if mode == "ratelimit" and _Faulty.calls[mode] == 1:
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.end_headers()
            return
        if mode == "slow":
            time.sleep(2)
        if mode == "garbage":
            reply = {"choices": [{"text": "banana", "logprobs": None}]}
        else:
            reply = {"choices": [{"text": " 3", "logprobs": {"top_logprobs": [{" 3": -0.1, " 4": -2.5, "x": -4.0}]}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def faulty_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_429_retry_after_is_honoured(faulty_server):
    backend = make_backend(BackendConfig(type="openai", base_url=f"{faulty_server}/ratelimit", model="m", max_retries=2))
    started = time.perf_counter()
    [answer] = backend.grade("p", ["q"], CHOICES)
    assert answer.ok and answer.distribution["3"] > 0.9
    assert time.perf_counter() - started >= 1.0  # waited as told
    assert _Faulty.calls["ratelimit"] == 2


def test_garbage_answer_is_recorded_not_guessed(faulty_server, tmp_path):
    backend = make_backend(BackendConfig(type="openai", base_url=f"{faulty_server}/garbage", model="m"))
    cache = AnswerCache(tmp_path / "c.sqlite")
    [answer] = grade_cached(backend, cache, "p", ["q"], CHOICES)
    assert not answer.ok and answer.raw == "banana" and "not one of" in answer.error
    assert grade_cached(backend, cache, "p", ["q"], CHOICES)[0].cached  # final: asked once


def test_timeout_and_endpoint_down_are_failures_that_are_not_cached(faulty_server, tmp_path):
    slow = make_backend(BackendConfig(type="openai", base_url=f"{faulty_server}/slow", model="m", timeout=0.5, max_retries=1))
    [answer] = slow.grade("p", ["q"], CHOICES)
    assert not answer.ok and answer.error.startswith("request failed") and "2 attempts" in answer.error
    down = make_backend(BackendConfig(type="openai", base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", max_retries=1))
    cache = AnswerCache(tmp_path / "c.sqlite")
    [answer] = grade_cached(down, cache, "p", ["q"], CHOICES)
    assert answer.error.startswith("request failed") and "Connection refused" in answer.error
    assert not grade_cached(down, cache, "p", ["q"], CHOICES)[0].cached  # asked again next time


def test_api_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_KEY", "secret")
    backend = make_backend(BackendConfig(type="openai", base_url="http://127.0.0.1:1/v1", model="m", api_key_env="MY_KEY"))
    assert backend.api_key == "secret"
    assert os.environ["MY_KEY"] == "secret"
