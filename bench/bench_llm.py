"""Embedded and OpenAI-compatible grading throughput, same documents, one run.

    python bench/bench_llm.py [--docs 40] [--short-chars 300] [--server-docs 12] [--no-naive] [--scaling-only]

All use the seed selector's real prompt (rubric + 3 few-shot examples) and
read the grade from next-token probabilities with the default model (Gemma 3
270M Q4_K_M, llama.cpp on the CPU, 2 threads). No answer cache anywhere.

* naive: the whole prompt evaluated for every document;
* prefix reuse (curator's default): the shared prefix evaluated once, only the
  document's tokens after it;
* batched (``batch_docs: 4``): prefix reuse, and up to 4 documents packed into
  one decode call (own sequence ids sharing the prefix's KV cells);
* the same two again on documents cut short (``--short-chars``), where packing
  has room to pay;
* openai: the ``openai`` backend against a real ``llama_cpp.server`` with the
  same model on 127.0.0.1, concurrency 1 vs 4;
* scaling: llama.cpp's throughput per token against the tokens in one decode
  call (why packing pays only for short documents).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_dolma, machine, timer  # noqa: E402

from curator.llm import BackendConfig  # noqa: E402
from curator.llm.embedded import EmbeddedBackend  # noqa: E402
from curator.llm.openai import OpenAIBackend  # noqa: E402
from curator_plugins.seed_selector import CHOICES, SeedSelector  # noqa: E402


def timed(backend, prefix, suffixes):
    with timer() as t:
        answers = backend.grade(prefix, suffixes, CHOICES)
    assert all(a.ok for a in answers), [a.error for a in answers if not a.ok]
    return answers, t.seconds


def largest_difference(answers, reference):
    return max(abs(a.expected - b.expected) for a, b in zip(answers, reference))


def start_server(model_path: str, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # logits_all: llama-cpp-python's server returns logprobs only with it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            model_path,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            "--logits_all",
            "True",
            "--model_alias",
            "gemma",
        ],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")


def decode_scaling(backend: EmbeddedBackend, tokens: list[int]) -> None:
    """Tokens per CPU-second of one decode call from an empty cache, by its size (CPU time: less moved by other load)."""
    import llama_cpp

    backend.batch_docs = 1
    ctx = backend._context()
    best_512 = None
    for n in (512, 64, 128, 285, 512):  # the first 512: warm-up, not printed
        best = float("inf")
        for _ in range(5):
            llama_cpp.llama_memory_clear(ctx.memory, True)
            backend._batch_prefix = None
            backend._fill([(0, 0, tokens[:n])], want_logits=True)
            started = time.process_time()
            ctx.decode(backend._batch)
            best = min(best, time.process_time() - started)
        if n == 512 and best_512 is None:
            best_512 = best
            continue
        print(f"  one decode of {n:4d} tokens: {n / best:6.0f} tokens per CPU-second")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--max-doc-chars", type=int, default=1000)
    parser.add_argument("--short-chars", type=int, default=300)
    parser.add_argument("--server-docs", type=int, default=12)
    parser.add_argument("--no-naive", action="store_true", help="skip the full-prompt loop (the slowest)")
    parser.add_argument("--scaling-only", action="store_true", help="only the decode-size scaling")
    args = parser.parse_args()
    texts = [r["text"] for r in load_dolma() if len(r["text"]) > 500][: args.docs]
    step, short_step = SeedSelector(max_doc_chars=args.max_doc_chars), SeedSelector(max_doc_chars=args.short_chars)
    prefix = step.prompt_prefix()
    suffixes, short = [step.suffix(t) for t in texts], [short_step.suffix(t) for t in texts]
    config = BackendConfig(n_threads=2)
    reuse = EmbeddedBackend(config)
    batched = EmbeddedBackend(config, batch_docs=4)
    n_prefix = len(reuse._tokens(prefix, bos=True))
    n_doc = np.mean([len(reuse._tokens(s, bos=False)) for s in suffixes])
    n_short = np.mean([len(reuse._tokens(s, bos=False)) for s in short])
    print(
        f"{len(texts)} dolma documents; prompt prefix {n_prefix} tokens; documents cut to {args.max_doc_chars} chars "
        f"= {n_doc:.0f} tokens on average, short ones to {args.short_chars} chars = {n_short:.0f} tokens; {machine()}, 2 threads",
        flush=True,
    )
    if args.scaling_only:
        decode_scaling(batched, [t for s in suffixes for t in reuse._tokens(s, bos=False)])
        return
    for backend in (reuse, batched):  # warm up (model pages, threads, the batch context)
        backend.grade(prefix, short[:2], CHOICES)
    rows = []
    if not args.no_naive:
        naive = EmbeddedBackend(config, reuse_prefix=False)
        naive.grade(prefix, short[:1], CHOICES)
        _, s = timed(naive, prefix, suffixes)
        rows.append(("naive: full prompt per document", s, len(texts), None))
        naive.close()
    base, s = timed(reuse, prefix, suffixes)
    rows.append((f"prefix reuse, {args.max_doc_chars} chars", s, len(texts), None))
    got, s = timed(batched, prefix, suffixes)
    rows.append((f"batched (4 per decode), {args.max_doc_chars} chars", s, len(texts), largest_difference(got, base)))
    short_base, s = timed(reuse, prefix, short)
    rows.append((f"prefix reuse, {args.short_chars} chars", s, len(texts), None))
    got, s = timed(batched, prefix, short)
    rows.append((f"batched (4 per decode), {args.short_chars} chars", s, len(texts), largest_difference(got, short_base)))
    model_path = reuse.path
    reuse.close()
    batched.close()

    if args.server_docs:
        with tempfile.TemporaryDirectory(prefix="curator-bench-llm-") as tmp:
            proc, url = start_server(model_path, Path(tmp) / "server.log")
            try:
                docs = short[: args.server_docs]
                for concurrency in (1, 4):
                    client = OpenAIBackend(BackendConfig(type="openai", base_url=url, model="gemma", concurrency=concurrency, timeout=600))
                    client.grade(prefix, docs[:1], CHOICES)  # warm: the server caches the prompt prefix too
                    got, s = timed(client, prefix, docs)
                    rows.append((f"openai -> llama_cpp.server, concurrency {concurrency}, {args.short_chars} chars", s, len(docs), largest_difference(got, short_base)))
            finally:
                proc.terminate()
                proc.wait(timeout=60)

    for name, s, n, diff in rows:
        extra = "" if diff is None else f"   grades within {diff:.3f} of prefix reuse"
        print(f"{name:58s} {s:7.2f}s  {n / s:6.2f} docs/s{extra}")
    by = {name: n / s for name, s, n, _ in rows}
    if "naive: full prompt per document" in by:
        print(f"  prefix reuse = {by[f'prefix reuse, {args.max_doc_chars} chars'] / by['naive: full prompt per document']:.2f}x naive")
    for chars in (args.max_doc_chars, args.short_chars):
        print(f"  batched = {by[f'batched (4 per decode), {chars} chars'] / by[f'prefix reuse, {chars} chars']:.2f}x prefix reuse at {chars} chars (goal >= 1.5x)")
    if args.server_docs:
        c1, c4 = (by[f"openai -> llama_cpp.server, concurrency {c}, {args.short_chars} chars"] for c in (1, 4))
        print(f"  openai concurrency 4 = {c4 / c1:.2f}x concurrency 1")


if __name__ == "__main__":
    main()
