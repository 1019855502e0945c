"""Malformed LLM replies are recorded failures, never crashes or NaN grades; secrets never reach an answer or the cache.

The endpoint is a real HTTP server on 127.0.0.1 speaking the completions protocol
and misbehaving on purpose: which fault it commits is chosen by the prompt
(``... case:<name>``), so one grading call can meet every fault at once, as a
run would.
"""

from __future__ import annotations

import http.server
import json
import math
import sqlite3
import threading
import time

import numpy as np
import pytest

from curator.llm import Answer, AnswerCache, BackendConfig, finish, grade_cached, make_backend, redact, validate
from curator.llm.embedded import answer_from_logits

CHOICES = ["0", "1", "2", "3", "4", "5"]
KEY_ENV = "CURATOR_TEST_LLM_KEY"
# matched by no pattern on its own (no digit run, too short for a token): only the configured value catches it
KEY = "hunter2-opens-the-vault"
GOOD = {"choices": [{"text": " 3", "logprobs": {"top_logprobs": [{" 3": -0.1, " 4": -2.5, "x": -4.0}]}}]}
AWS_ID, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
OPENAI_KEY, HEX = "sk-proj-Abc123def456GHI789jkl", "0123456789abcdef0123456789abcdef01234567"


def _completion(top) -> bytes:
    return json.dumps({"choices": [{"text": " 3", "logprobs": {"top_logprobs": [top]}}]}).encode()


# name -> (status, content type, body); bodies are bytes exactly as sent
REPLIES: dict[str, tuple[int, str, bytes]] = {
    "ok": (200, "application/json", json.dumps(GOOD).encode()),
    "chat_shape": (
        200,
        "application/json",
        json.dumps(
            {"choices": [{"text": "3", "logprobs": {"content": [{"token": "3", "logprob": -0.2, "top_logprobs": [{"token": "3", "logprob": -0.2}, {"token": "2", "logprob": -1.9}]}]}}]}
        ).encode(),
    ),
    "logprobs_null_text_ok": (200, "application/json", b'{"choices": [{"text": " 4", "logprobs": null}]}'),
    # not a JSON document at all: a failed request, retried, not cached
    "truncated_json": (200, "application/json", json.dumps(GOOD).encode()[:37]),
    "not_utf8": (200, "application/json", b'{"choices": [{"text": "\xff\xfe3", "logprobs": null}]}'),
    "html_200": (200, "text/html", b"<html><body><h1>Sign in to the gateway</h1></body></html>"),
    "empty_200": (200, "application/json", b""),
    "error_500": (500, "application/json", b'{"error": {"message": "CUDA out of memory", "type": "server_error"}}'),
    "error_400": (400, "application/json", b'{"error": {"message": "prompt too long"}}'),
    # JSON, but not a usable completion: final, cached
    "choices_missing": (200, "application/json", b'{"object": "text_completion", "model": "m"}'),
    "error_in_200": (200, "application/json", b'{"error": {"message": "model is loading"}}'),
    "choices_empty": (200, "application/json", b'{"choices": []}'),
    "choices_dict": (200, "application/json", b'{"choices": {"0": {"text": " 3"}}}'),
    "choices_null": (200, "application/json", b'{"choices": null}'),
    "choice_string": (200, "application/json", b'{"choices": [" 3"]}'),
    "reply_list": (200, "application/json", b"[1, 2, 3]"),
    "reply_string": (200, "application/json", b'"3"'),
    "text_number": (200, "application/json", b'{"choices": [{"text": 3}]}'),
    "logprobs_list": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": [-0.1]}]}'),
    "logprobs_string": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": "-0.1"}]}'),
    "top_is_dict": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": {" 3": -0.1}}}]}'),
    "top_empty": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": []}}]}'),
    "top_pairs": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": [[" 3", -0.1]]}}]}'),
    "content_bad": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"content": [{"top_logprobs": [{"logprob": -0.1}]}]}}]}'),
    "logprob_1e308": (200, "application/json", _completion({" 3": 1e308, " 4": -1.0})),
    "logprob_1e400": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": [{" 3": 1e400}]}}]}'),
    "logprob_positive": (200, "application/json", _completion({" 3": 0.5})),
    "logprob_nan": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": [{" 3": NaN, " 4": -1.0}]}}]}'),
    "logprob_inf": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": [{" 3": Infinity}]}}]}'),
    "logprob_minus_inf": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": [{" 3": -Infinity, " 4": -0.1}]}}]}'),
    "logprob_nan_other_token": (200, "application/json", b'{"choices": [{"text": " 3", "logprobs": {"top_logprobs": [{" 3": -0.1, "x": NaN}]}}]}'),
    "logprob_string": (200, "application/json", _completion({" 3": "-0.1"})),
    "logprob_null": (200, "application/json", _completion({" 3": None})),
    "logprob_bool": (200, "application/json", _completion({" 3": True})),
    "mass_above_one": (200, "application/json", _completion({" 3": -0.1, " 4": -0.1})),
}

# case -> (error prefix, a fragment the error must contain)
FAILURES = {
    "truncated_json": ("request failed", "not JSON"),
    "not_utf8": ("request failed", "not UTF-8"),
    "html_200": ("request failed", "not JSON (text/html"),
    "empty_200": ("request failed", "not JSON"),
    "error_500": ("request failed", "HTTP 500"),
    "error_400": ("request failed", "prompt too long"),
    "cut_off": ("request failed", "IncompleteRead"),
    "hang_up": ("request failed", "RemoteDisconnected"),
    "slow": ("request failed", "timed out"),
    "drip": ("request failed", "longer than 0.5 s"),
    "huge_body": ("request failed", "larger than 8 MiB"),
    "choices_missing": ("bad response", "choices missing"),
    "error_in_200": ("bad response", "model is loading"),
    "choices_empty": ("bad response", "choices is empty"),
    "choices_dict": ("bad response", "choices is dict"),
    "choices_null": ("bad response", "choices is NoneType"),
    "choice_string": ("bad response", "choices[0] is str"),
    "reply_list": ("bad response", "JSON list"),
    "reply_string": ("bad response", "JSON str"),
    "text_number": ("bad response", "text is int"),
    "logprobs_list": ("bad response", "logprobs is list"),
    "logprobs_string": ("bad response", "logprobs is str"),
    "top_is_dict": ("bad response", "top_logprobs is dict"),
    "top_empty": ("bad response", "top_logprobs is empty"),
    "top_pairs": ("bad response", "top_logprobs[0] is list"),
    "content_bad": ("bad response", "without a token"),
    "logprob_1e308": ("bad response", "1e+308"),
    "logprob_1e400": ("bad response", "inf"),
    "logprob_positive": ("bad response", "0.5"),
    "logprob_nan": ("bad response", "nan"),
    "logprob_inf": ("bad response", "inf"),
    "logprob_minus_inf": ("bad response", "-inf"),
    "logprob_nan_other_token": ("bad response", "nan"),
    "logprob_string": ("bad response", "str '-0.1'"),
    "logprob_null": ("bad response", "NoneType"),
    "logprob_bool": ("bad response", "bool"),
    "mass_above_one": ("unparsed", "more than 1"),
}


class _Faulty(http.server.BaseHTTPRequestHandler):
    calls: dict[str, int] = {}
    seen_auth: list[str] = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, ctype: str, body: bytes, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        case = request["prompt"].rsplit("case:", 1)[1]
        _Faulty.calls[case] = _Faulty.calls.get(case, 0) + 1
        _Faulty.seen_auth.append(self.headers.get("Authorization", ""))
        auth = self.headers.get("Authorization", "")
        if case in REPLIES:
            self._send(*REPLIES[case])
        elif case == "flaky_html":  # a proxy page once, then the real answer
            self._send(*(REPLIES["html_200"] if _Faulty.calls[case] == 1 else REPLIES["ok"]))
        elif case == "cut_off":  # promises 400 bytes, sends 40, hangs up
            self._send(200, "application/json", json.dumps(GOOD).encode()[:40], length=400)
            self.wfile.flush()
            self.close_connection = True
        elif case == "huge_body":  # 9 MiB of whitespace: valid JSON would follow, but nobody should wait for it
            try:
                self._send(200, "application/json", b" " * (9 * 2**20) + json.dumps(GOOD).encode())
            except OSError:
                pass
        elif case == "hang_up":  # reads the request, closes without a word
            self.close_connection = True
        elif case == "slow":
            time.sleep(1.5)
            self._send(*REPLIES["ok"])
        elif case == "drip":  # headers at once, then one byte every 0.1 s: no single read times out
            body = json.dumps(GOOD).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(min(len(body), 30)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True
        elif case.startswith("echo"):
            # an error page that echoes the request's credentials and leaks the server's own
            # echo_at_cut puts the key across the 500th character, where a raw text is cut
            padding = "x " * (245 if case == "echo_at_cut" else 0)
            detail = f'{padding}{KEY} invalid; you sent Authorization: {auth}; upstream keys: {OPENAI_KEY} {AWS_ID} {AWS_SECRET} session {HEX}; config {{"api_key": "{KEY}", "password": "pa55word!"}}'
            if case == "echo_500":
                self._send(500, "text/plain", detail.encode())
            elif case == "echo_401":
                self._send(401, "application/json", json.dumps({"error": {"message": detail}}).encode())
            elif case == "echo_200_error":
                self._send(200, "application/json", json.dumps({"error": detail}).encode())
            elif case == "echo_200_html":
                self._send(200, "text/html", f"<html>{detail}</html>".encode())
            else:  # echo_text / echo_at_cut: no logprobs, the generated text is the leak
                self._send(200, "application/json", json.dumps({"choices": [{"text": detail, "logprobs": None}]}).encode())
        else:
            self._send(404, "text/plain", b"unknown case")


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _backend(server, monkeypatch=None, **kw):
    config = dict(type="openai", base_url=server, model="m", timeout=0.5, max_retries=0, api_key_env=KEY_ENV)
    config.update(kw)
    return make_backend(BackendConfig(**config))


def _assert_failed(answer: Answer, prefix: str, fragment: str) -> None:
    assert answer.distribution is None and answer.expected is None and not answer.ok
    assert answer.error and answer.error.startswith(prefix + ":"), answer.error
    assert fragment in answer.error, answer.error
    assert answer.mass is None or math.isfinite(answer.mass)


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_every_malformed_reply_is_a_recorded_failure(server, tmp_path, case):
    prefix, fragment = FAILURES[case]
    backend = _backend(server)
    cache = AnswerCache(tmp_path / "c.sqlite")
    before = _Faulty.calls.get(case, 0)
    [answer] = grade_cached(backend, cache, "Rate it. ", [f"case:{case}"], CHOICES)
    _assert_failed(answer, prefix, fragment)
    again = grade_cached(backend, cache, "Rate it. ", [f"case:{case}"], CHOICES)[0]
    _assert_failed(again, prefix, fragment)
    if prefix == "request failed":  # nothing usable arrived: asked again next time
        assert not again.cached and _Faulty.calls[case] == before + 2
    else:  # the server answered this prompt with garbage: final
        assert again.cached and again.error == answer.error and _Faulty.calls[case] == before + 1


def test_one_grading_call_meets_every_fault_and_goes_on(server, tmp_path):
    """What a fit step sees: one answer per document, the good ones graded, no exception, no NaN."""
    cases = [c for c in FAILURES if c not in ("slow", "drip")] + ["ok", "chat_shape", "logprobs_null_text_ok"]
    backend = _backend(server, concurrency=4)
    answers = grade_cached(backend, AnswerCache(tmp_path / "c.sqlite"), "Rate it. ", [f"case:{c}" for c in cases], CHOICES)
    assert len(answers) == len(cases)
    by_case = dict(zip(cases, answers))
    for case, answer in by_case.items():
        if case in FAILURES:
            _assert_failed(answer, *FAILURES[case])
        else:
            assert answer.ok and answer.error is None, (case, answer.error)
            assert math.isfinite(answer.expected) and abs(sum(answer.distribution.values()) - 1) < 1e-9
    assert by_case["ok"].distribution["3"] > 0.9
    assert by_case["chat_shape"].expected == pytest.approx(3 * 0.8187 / (0.8187 + 0.1496) + 2 * 0.1496 / (0.8187 + 0.1496), abs=1e-3)
    assert by_case["logprobs_null_text_ok"].distribution["4"] == 1.0  # no logprobs: graded by the text, as documented


def test_a_body_that_is_not_json_is_retried_within_the_request(server):
    [answer] = _backend(server, max_retries=1).grade("p ", ["case:flaky_html"], CHOICES)
    assert answer.ok and _Faulty.calls["flaky_html"] == 2
    [answer] = _backend(server, max_retries=1).grade("p ", ["case:truncated_json"], CHOICES)
    assert answer.error.startswith("request failed") and "after 2 attempts" in answer.error


@pytest.mark.parametrize("case", ["echo_500", "echo_401", "echo_200_error", "echo_200_html", "echo_text", "echo_at_cut"])
def test_secrets_echoed_by_a_server_are_redacted_everywhere(server, tmp_path, monkeypatch, case):
    monkeypatch.setenv(KEY_ENV, KEY)
    backend = _backend(server)
    cache = AnswerCache(tmp_path / "c.sqlite")
    [answer] = grade_cached(backend, cache, "p ", [f"case:{case}"], CHOICES)
    assert _Faulty.seen_auth[-1] == f"Bearer {KEY}"  # the key was really sent, and so really echoed
    assert not answer.ok and "[REDACTED]" in (answer.error or "") + answer.raw
    stored = [answer.error or "", answer.raw]
    cache.close()
    stored.append((tmp_path / "c.sqlite").read_bytes().decode("latin-1"))
    for secret in (KEY, KEY[:10], OPENAI_KEY, OPENAI_KEY[8:], AWS_ID, AWS_SECRET[:12], HEX[:12], "pa55word!"):
        for text in stored:
            assert secret not in text, (secret, text)
    if case == "echo_text":  # a generated text is an answer: cached, redacted
        assert "[REDACTED] invalid" in answer.raw
        assert AnswerCache(tmp_path / "c.sqlite").get(AnswerCache.key("openai", backend.model_id, "p case:echo_text", {"choices": CHOICES, "min_mass": 0.05})).cached


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"key {OPENAI_KEY} is invalid", OPENAI_KEY),
        ("sk-ant-api03-AbCdEfGh12345678", "AbCdEfGh12345678"),
        (f"aws_access_key_id={AWS_ID}", AWS_ID),
        (f"aws secret {AWS_SECRET}", AWS_SECRET),
        (f"request {HEX} failed", HEX),
        ('{"api_key": "plain-words-key"}', "plain-words-key"),
        ("https://api.example/v1?api-key=qwerty12&x=1", "qwerty12"),
        ("password=letmein!", "letmein!"),
        ("x-api-key: zzzzzzzz", "zzzzzzzz"),
        ("postgres://admin:s3cr3t@db:5432/x", "s3cr3t"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghij"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", "eyJhbGciOiJIUzI1NiJ9"),
        ("token QWxhZGRpbjpvcGVuIHNlc2FtZQ1234567890abcdXYZ trailing", "QWxhZGRpbjpvcGVuIHNlc2FtZQ1234567890abcdXYZ"),
    ],
)
def test_redact_removes_what_looks_like_a_secret(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned and "[REDACTED]" in cleaned


def test_redact_removes_configured_values_and_keeps_ordinary_text():
    assert redact("the key plainvalue was refused", ["plainvalue"]) == "the key [REDACTED] was refused"
    assert redact("short ab stays", ["ab"]) == "short ab stays"  # too short to be a secret worth mangling text for
    for ordinary in [
        "HTTP 500 from http://127.0.0.1:8000/v1/completions: model is loading",
        '{"3": 0.8187, "4": 0.1496, "x": 0.0183}',
        "unparsed: only 0.012 probability on the allowed answers",
        "the token limit was exceeded; max_tokens: 1",
        "Basic knowledge of fractions, bearer of news",
        "/v1/engines/text-davinci-003/completions",
    ]:
        assert redact(ordinary) == ordinary


def test_finish_refuses_nan_and_infinite_probabilities():
    for probs in [{"3": math.nan}, {"3": 0.5, "4": math.inf}, {"3": -0.2}, {"3": 1.5}, {"3": "0.5"}, {"3": 0.9, "4": 0.9}]:
        answer = finish(probs, CHOICES, 0.05, "raw")
        assert answer.distribution is None and answer.expected is None and answer.error.startswith("unparsed"), probs
    answer = finish({"3": 0.6, "4": 0.2}, CHOICES, 0.05, "raw")
    assert answer.ok and answer.expected == pytest.approx(3.25)


def test_embedded_probabilities_from_broken_logits_are_unparsed():
    ids = [10, 11, 12, 13, 14, 15]

    def extract(logits):
        return answer_from_logits(np.array(logits, dtype=np.float64), ids, CHOICES, 0.05, lambda t: f"t{t}")

    base = np.full(32, -5.0)
    base[13] = 3.0  # "3" is the likely next token
    good = extract(base)
    assert good.ok and good.distribution["3"] > 0.9 and math.isfinite(good.expected)
    minus_inf = base.copy()
    minus_inf[:5] = -np.inf  # tokens ruled out: an ordinary logit
    assert extract(minus_inf).ok
    for broken in ("nan_one", "nan_all", "posinf", "all_minus_inf", "empty"):
        logits = base.copy()
        if broken == "nan_one":
            logits[20] = np.nan
        elif broken == "nan_all":
            logits[:] = np.nan
        elif broken == "posinf":
            logits[12] = np.inf
        elif broken == "all_minus_inf":
            logits[:] = -np.inf
        else:
            logits = np.array([])
        answer = extract(logits)
        assert answer.distribution is None and answer.expected is None, broken
        assert answer.error.startswith("unparsed: the model's next-token logits are broken"), answer.error
    huge = base.copy()
    huge[13] = 1e308  # finite but absurd: still a proper softmax, no overflow
    assert extract(huge).distribution["3"] == 1.0


def test_an_old_cached_nan_answer_is_read_back_unparsed(tmp_path):
    path = tmp_path / "old.sqlite"
    cache = AnswerCache(path)
    cache.close()
    nan_answer = {"distribution": {c: math.nan for c in CHOICES}, "expected": math.nan, "raw": "{}", "mass": math.nan, "error": None, "cached": False, "seconds": 0.1, "meta": {}}
    leaky = {"distribution": None, "expected": None, "raw": f"Bearer {OPENAI_KEY}", "mass": None, "error": f"unparsed: {AWS_ID}", "cached": False, "seconds": 0.1, "meta": {}}
    with sqlite3.connect(path) as db:  # rows as an older curator wrote them (json.dumps writes NaN as NaN)
        db.execute("INSERT INTO answers VALUES (?, ?, ?)", ("nan", json.dumps(nan_answer), 0.0))
        db.execute("INSERT INTO answers VALUES (?, ?, ?)", ("leaky", json.dumps(leaky), 0.0))
        db.execute("INSERT INTO answers VALUES (?, ?, ?)", ("corrupt", '{"distribution": ', 0.0))
        db.execute("INSERT INTO answers VALUES (?, ?, ?)", ("alien", '{"colour": "blue"}', 0.0))
    cache = AnswerCache(path)
    answer = cache.get("nan")
    assert answer.cached and answer.distribution is None and answer.expected is None and answer.mass is None
    assert answer.error.startswith("unparsed:")
    leaked = cache.get("leaky")
    assert OPENAI_KEY not in leaked.raw and AWS_ID not in leaked.error
    assert cache.get("corrupt") is None and cache.get("alien") is None  # unreadable rows are asked again


def test_a_backend_that_raises_or_returns_nan_does_not_stop_the_step(tmp_path):
    from curator.llm import LLMBackend

    class Broken(LLMBackend):
        name = "broken"
        model_id = "b"

        def grade(self, prefix, suffixes, choices):
            if "boom" in prefix:
                raise RuntimeError(f"crashed with key {OPENAI_KEY}")
            return [Answer({c: math.nan for c in choices}, math.nan, "raw")] * (len(suffixes) - 1)  # NaN, and one short

    cache = AnswerCache(tmp_path / "c.sqlite")
    backend = Broken(BackendConfig())
    crashed = grade_cached(backend, cache, "boom ", ["a", "b"], CHOICES)
    assert [a.error.split(":")[0] for a in crashed] == ["backend error", "backend error"]
    assert OPENAI_KEY not in crashed[0].error
    assert not grade_cached(backend, cache, "boom ", ["a"], CHOICES)[0].cached  # asked again next time
    answers = grade_cached(backend, cache, "p ", ["a", "b"], CHOICES)
    assert len(answers) == 2 and not any(a.ok for a in answers)
    assert answers[0].error.startswith("unparsed:") and answers[1].error == "backend error: no answer returned"
    assert validate(Answer({"3": 1.0}, 3.0, "")).ok
