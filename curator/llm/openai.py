"""Any OpenAI-compatible completions endpoint: vLLM, llama.cpp server, Ollama, hosted APIs.

Grading asks ``/completions`` for one token with ``logprobs`` and reads the
top tokens' probabilities; an endpoint that returns no logprobs is graded by
its generated text, parsed strictly. Requests run with bounded concurrency;
connection errors, timeouts, 5xx and 429 are retried with exponential backoff
(``Retry-After`` honoured); a request that still fails is recorded as failed,
with the error, and is not cached, so a resumed run asks again.

Nothing a server sends can crash a run or become a NaN grade: a reply that is
cut short, not UTF-8 or not JSON is a failed request (retried, not cached); a
JSON reply that is not a completion, or whose logprobs are not finite numbers
<= 0, is a ``bad response`` (final, cached). Error bodies and raw texts are
redacted of the API key and anything that looks like a credential.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from curator.errors import ConfigError
from curator.llm import Answer, BackendConfig, LLMBackend, finish, redact

RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
#: a completion of one token is a few KB; anything far bigger is not one
MAX_BODY = 8 * 1024 * 1024
#: how much of an error body or a raw text is kept (after redaction)
KEEP_CHARS = 300


class OpenAIBackend(LLMBackend):
    name = "openai"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        if not config.base_url or not config.model:
            raise ConfigError("the openai backend needs base_url (…/v1) and model")
        self.url = config.base_url.rstrip("/") + "/completions"
        self.api_key = os.environ.get(config.api_key_env, "")

    @property
    def model_id(self) -> str:
        return f"{self.config.base_url}|{self.config.model}"

    def redact(self, text: str) -> str:
        return redact(text, [self.api_key])

    def grade(self, prefix: str, suffixes: Sequence[str], choices: Sequence[str]) -> list[Answer]:
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(lambda s: self._grade_one(prefix + s, choices), suffixes))

    def _grade_one(self, prompt: str, choices: Sequence[str]) -> Answer:
        started = time.perf_counter()
        body = {"model": self.config.model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": self.config.top_logprobs}
        try:
            response = self._post(body)
            answer = parse_completion(response, choices, self.config.min_mass)
        except RequestFailed as exc:
            answer = Answer(None, None, "", error=f"request failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - a reply nobody foresaw is a recorded failure, not a crashed run
            answer = Answer(None, None, "", error=f"bad response: {type(exc).__name__}: {exc}")
        # redact before truncating: a cut must not leave half a key that no pattern recognises
        answer.raw = self.redact(answer.raw)[:500]
        answer.error = self.redact(answer.error)[:500] if answer.error else None
        answer.seconds = time.perf_counter() - started
        return answer

    def _read(self, reply: Any, deadline: float) -> bytes:
        """The whole body, within the request's time limit (a server dripping bytes must not hold a worker forever)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the reply took longer than {self.config.timeout:g} s")
            chunk = reply.read1(65536)  # returns after one receive, so the deadline is checked while a server drips
            if not chunk:
                missing = getattr(reply, "length", None)
                if missing:  # http.client ends a short length-delimited body silently
                    raise http.client.IncompleteRead(b"".join(chunks), missing)
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                raise BodyError(f"the reply is larger than {MAX_BODY // 2**20} MiB")

    def _post(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.config.max_retries + 1):
            delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
            deadline = time.monotonic() + self.config.timeout
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.config.timeout) as reply:
                    return decode_body(self._read(reply, deadline), reply.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} from {self.url}: {self._error_detail(exc)}"
                if exc.code not in RETRYABLE:
                    raise RequestFailed(last) from None
                delay = _retry_after(exc.headers.get("Retry-After") if exc.headers else None, delay)
            except BodyError as exc:
                # the snippet is redacted whole, then cut: a cut first could leave half a key behind
                snippet = " ".join(self.redact(exc.snippet).split())[:200]
                last = f"{exc} ({self.url})" + (f": {snippet!r}" if snippet else "")
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
                # refused, reset, closed mid-reply (IncompleteRead, RemoteDisconnected), timed out
                cause = getattr(exc, "reason", None)  # urllib wraps the socket error; name that one
                cause = cause if isinstance(cause, BaseException) else exc
                last = f"{type(cause).__name__}: {cause} ({self.url})"
            if attempt < self.config.max_retries:
                time.sleep(delay)
        raise RequestFailed(f"{self.redact(last)} (after {self.config.max_retries + 1} attempts)")

    def _error_detail(self, exc: urllib.error.HTTPError) -> str:
        try:
            raw = exc.read(8192)
        except Exception:  # noqa: BLE001 - the body of an error reply may itself be cut short
            return "(no readable body)"
        text = raw.decode("utf-8", errors="replace").strip()
        return self.redact(text)[:KEEP_CHARS]


class RequestFailed(Exception):
    pass


class BodyError(Exception):
    """A reply arrived but is not a JSON document: retried like a transport error."""

    def __init__(self, message: str, snippet: str = "") -> None:
        super().__init__(message)
        self.snippet = snippet


def _retry_after(header: str | None, default: float) -> float:
    if not header:
        return default
    try:
        seconds = float(header)
    except ValueError:
        return default  # an HTTP date: not worth parsing for a retry
    return min(60.0, seconds) if math.isfinite(seconds) and seconds >= 0 else default


def decode_body(raw: bytes, content_type: str = "") -> Any:
    """The reply as JSON, or a ``BodyError`` saying why it is not (not UTF-8, HTML, cut short)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the reply is not UTF-8 (byte {exc.start} of {len(raw)})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        what = content_type.split(";")[0].strip() or "no content type"
        raise BodyError(f"the reply is not JSON ({what}, {len(raw)} bytes: {exc})", text[:4000]) from None


class BadResponse(Exception):
    pass


def _logprob(token: Any, value: Any) -> float:
    """A log-probability: a finite number <= 0 (a hair above 0 is rounding and counts as 0)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BadResponse(f"logprob of {token!r} is {type(value).__name__} {value!r}, not a number")
    if not math.isfinite(value) or value > 1e-4:
        raise BadResponse(f"logprob of {token!r} is {value!r}, not a finite number <= 0")
    return min(0.0, float(value))


def _top_logprobs(logprobs: Any) -> dict[str, float] | None:
    """The first position's top tokens and their logprobs; None when the reply has none (then the text is graded)."""
    if logprobs is None:
        return None
    if not isinstance(logprobs, dict):
        raise BadResponse(f"logprobs is {type(logprobs).__name__}, expected an object")
    if "top_logprobs" in logprobs and logprobs["top_logprobs"] is not None:
        # /v1/completions: {"top_logprobs": [{token: logprob, ...}, ...]}
        positions = logprobs["top_logprobs"]
        if not isinstance(positions, list):
            raise BadResponse(f"logprobs.top_logprobs is {type(positions).__name__}, expected a list")
        if not positions:
            raise BadResponse("logprobs.top_logprobs is empty")
        top = positions[0]
        if top is None:
            return None
        if not isinstance(top, dict):
            raise BadResponse(f"logprobs.top_logprobs[0] is {type(top).__name__}, expected an object of token: logprob")
        return {str(token): _logprob(token, value) for token, value in top.items()}
    if "content" in logprobs and logprobs["content"] is not None:
        # the chat shape, which llama.cpp's server also uses: {"content": [{"top_logprobs": [{"token", "logprob"}]}]}
        content = logprobs["content"]
        if not isinstance(content, list) or not content or not isinstance(content[0], dict):
            raise BadResponse("logprobs.content is not a non-empty list of objects")
        entries = content[0].get("top_logprobs")
        if not isinstance(entries, list):
            raise BadResponse("logprobs.content[0].top_logprobs is not a list")
        found: dict[str, float] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
                raise BadResponse("logprobs.content[0].top_logprobs has an entry without a token")
            found[entry["token"]] = _logprob(entry["token"], entry.get("logprob"))
        return found
    return None


def parse_completion(response: Any, choices: Sequence[str], min_mass: float) -> Answer:
    """Read the answer distribution from a completions response, strictly; never raises."""
    raw = json.dumps(response, ensure_ascii=False, default=str)[:2000] if not isinstance(response, str) else response[:2000]
    try:
        return _parse(response, choices, min_mass)
    except BadResponse as exc:
        return Answer(None, None, raw, error=f"bad response: {exc}")


def _parse(response: Any, choices: Sequence[str], min_mass: float) -> Answer:
    if not isinstance(response, dict):
        raise BadResponse(f"the reply is a JSON {type(response).__name__}, expected an object")
    if "choices" not in response:
        # not cut here: redaction comes first, in the backend, and then the cut
        hint = f" (error: {str(response['error'])[:4000]})" if "error" in response else ""
        raise BadResponse(f"choices missing{hint}")
    choices_field = response["choices"]
    if not isinstance(choices_field, list):
        raise BadResponse(f"choices is {type(choices_field).__name__}, expected a list")
    if not choices_field:
        raise BadResponse("choices is empty")
    choice = choices_field[0]
    if not isinstance(choice, dict):
        raise BadResponse(f"choices[0] is {type(choice).__name__}, expected an object")
    text = choice.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadResponse(f"choices[0].text is {type(text).__name__}, expected a string")
    top = _top_logprobs(choice.get("logprobs"))
    if top:
        probs: dict[str, float] = {}
        for token, logprob in top.items():
            key = token.strip()
            if key in choices:
                probs[key] = probs.get(key, 0.0) + math.exp(logprob)
        raw = json.dumps({k: round(math.exp(v), 4) for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:8]}, ensure_ascii=False)
        return finish(probs, choices, min_mass, raw)
    # no logprobs: the generated text must be exactly one of the answers
    if text.strip() in choices:
        return finish({text.strip(): 1.0}, choices, min_mass, text)
    return Answer(None, None, text, error=f"unparsed: answer {text[:50]!r} is not one of {list(choices)}")
