"""Any OpenAI-compatible completions endpoint: vLLM, llama.cpp server, Ollama, hosted APIs.

Grading asks ``/completions`` for one token with ``logprobs`` and reads the
top tokens' probabilities; an endpoint that returns no logprobs is graded by
its generated text, parsed strictly. Requests run with bounded concurrency;
connection errors, timeouts, 5xx and 429 are retried with exponential backoff
(``Retry-After`` honoured); a request that still fails is recorded as failed,
with the error, and is not cached, so a resumed run asks again.
"""

from __future__ import annotations

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
from curator.llm import Answer, BackendConfig, LLMBackend, finish

RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


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

    def grade(self, prefix: str, suffixes: Sequence[str], choices: Sequence[str]) -> list[Answer]:
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(lambda s: self._grade_one(prefix + s, choices), suffixes))

    def _grade_one(self, prompt: str, choices: Sequence[str]) -> Answer:
        started = time.perf_counter()
        body = {"model": self.config.model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": self.config.top_logprobs}
        try:
            response = self._post(body)
        except RequestFailed as exc:
            return Answer(None, None, "", error=f"request failed: {exc}", seconds=time.perf_counter() - started)
        answer = parse_completion(response, choices, self.config.min_mass)
        answer.seconds = time.perf_counter() - started
        return answer

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.config.max_retries + 1):
            delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.config.timeout) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode(errors="replace")
                last = f"HTTP {exc.code} from {self.url}: {detail}"
                if exc.code not in RETRYABLE:
                    raise RequestFailed(last) from None
                retry_after = exc.headers.get("Retry-After")
                if retry_after:
                    try:
                        delay = min(60.0, float(retry_after))
                    except ValueError:
                        pass
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)} ({self.url})"
            except json.JSONDecodeError as exc:
                last = f"the endpoint answered something that is not JSON: {exc}"
            if attempt < self.config.max_retries:
                time.sleep(delay)
        raise RequestFailed(f"{last} (after {self.config.max_retries + 1} attempts)")


class RequestFailed(Exception):
    pass


def parse_completion(response: dict[str, Any], choices: Sequence[str], min_mass: float) -> Answer:
    """Read the answer distribution from a completions response, strictly."""
    try:
        choice = response["choices"][0]
    except (KeyError, IndexError, TypeError):
        return Answer(None, None, json.dumps(response)[:500], error="unparsed: no choices in the response")
    text = choice.get("text") or ""
    logprobs = choice.get("logprobs") or {}
    top = (logprobs.get("top_logprobs") or [None])[0]
    if top:
        probs: dict[str, float] = {}
        for token, logprob in top.items():
            key = token.strip()
            if key in choices and logprob is not None:
                probs[key] = probs.get(key, 0.0) + math.exp(logprob)
        raw = json.dumps({k: round(math.exp(v), 4) for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:8]}, ensure_ascii=False)
        return finish(probs, choices, min_mass, raw)
    # no logprobs: the generated text must be exactly one of the answers
    if text.strip() in choices:
        return finish({text.strip(): 1.0}, choices, min_mass, text)
    return Answer(None, None, text, error=f"unparsed: answer {text[:50]!r} is not one of {list(choices)}")
