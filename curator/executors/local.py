"""The local executor: shards in parallel worker processes, no Ray needed.

With one worker everything runs in this process (easy to debug, no start-up
cost). With more, a spawn-context process pool is used; each worker process
receives the pickled steps once and calls ``setup()`` once, so models load once
per worker, as on Ray.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from curator.executors import OnShardDone
from curator.passes import PassOptions, process_unit, setup_steps
from curator.shards import WorkUnit
from curator.steps import Step

_worker_steps: Sequence[Step] = ()


def _init_worker(steps: Sequence[Step]) -> None:
    global _worker_steps
    _worker_steps = steps
    setup_steps(steps)


def _run_unit(unit: WorkUnit, pass_dir: Path, options: PassOptions) -> dict[str, Any]:
    return process_unit(unit, _worker_steps, pass_dir, options)


class LocalExecutor:
    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)

    def run_pass(self, steps: Sequence[Step], units: Sequence[WorkUnit], pass_dir: Path, options: PassOptions, on_done: OnShardDone) -> None:
        if not units:
            return
        if self.workers == 1 or len(units) == 1:
            setup_steps(steps)
            for unit in units:
                on_done(process_unit(unit, steps, pass_dir, options))
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(self.workers, len(units)), mp_context=context, initializer=_init_worker, initargs=(list(steps),)
        ) as pool:
            pending = {pool.submit(_run_unit, unit, pass_dir, options) for unit in units}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    on_done(future.result())

    def run_fit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def close(self) -> None:
        pass
