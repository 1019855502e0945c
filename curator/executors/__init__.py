"""Executors run a map pass (many shards) and a fit step. ``local`` needs no Ray."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from curator.passes import PassOptions
from curator.shards import WorkUnit
from curator.steps import Step

#: called with each finished shard's stats, for progress bars
OnShardDone = Callable[[dict[str, Any]], None]


class Executor(Protocol):
    workers: int

    def run_pass(self, steps: Sequence[Step], units: Sequence[WorkUnit], pass_dir: Path, options: PassOptions, on_done: OnShardDone) -> None: ...

    def run_fit(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def close(self) -> None: ...


def make_executor(
    kind: str,
    workers: int = 1,
    address: str | None = None,
    temp_dir: str | None = None,
    *,
    step_timeout: float | None = None,
    on_step_failure: str = "quarantine",
    isolate: bool | None = None,
) -> Executor:
    """``step_timeout``, ``on_step_failure`` (quarantine | fail) and ``isolate``
    (worker processes even for one worker) apply to the local executor."""
    if kind == "local":
        from curator.executors.local import LocalExecutor

        return LocalExecutor(workers=workers, step_timeout=step_timeout, on_step_failure=on_step_failure, isolate=isolate)
    if kind == "ray":
        from curator.executors.ray import RayExecutor

        return RayExecutor(workers=workers, address=address, temp_dir=temp_dir)
    raise ValueError(f"unknown executor {kind!r}: use 'local' or 'ray'")
