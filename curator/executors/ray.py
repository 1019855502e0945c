"""The Ray executor: the only module that imports ray.

Map passes run as Ray Data ``map_batches`` over an actor pool: the dataset
holds one row per shard, each actor receives the (pickled) steps once, calls
``setup()`` once (the model loads once per actor) and processes whole shards
with the same code as the local executor, writing its outputs atomically. That
keeps shard-level resumability and makes both executors produce the same rows.
Fit steps run as Ray tasks.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy

from curator.executors import OnShardDone
from curator.passes import PassOptions, process_unit, setup_steps
from curator.shards import WorkUnit
from curator.steps import Step


class _ShardWorker:
    """A Ray Data actor: set the steps up once, then process one shard per row."""

    def __init__(self, steps: Sequence[Step], pass_dir: str, options: PassOptions) -> None:
        self.steps = steps
        self.pass_dir = Path(pass_dir)
        self.options = options
        setup_steps(steps)

    def __call__(self, batch: pa.Table) -> pa.Table:
        stats = []
        for unit_json in batch.column("unit").to_pylist():
            unit = WorkUnit.from_dict(json.loads(unit_json))
            stats.append(json.dumps(process_unit(unit, self.steps, self.pass_dir, self.options)))
        return pa.table({"stats": pa.array(stats, pa.string())})


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class RayExecutor:
    def __init__(self, workers: int = 1, address: str | None = None, temp_dir: str | None = None) -> None:
        self.workers = max(1, workers)
        self._started_here = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                # One CPU per actor plus one spare, so Ray Data's own operators
                # never wait on CPUs that the actors hold (see NOTES: deadlock).
                kwargs["num_cpus"] = max(self.workers + 1, os.cpu_count() or 1)
                kwargs["_temp_dir"] = temp_dir or os.path.join(tempfile.gettempdir(), "curator-ray")
            ray.init(**kwargs)
            self._started_here = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False

    def run_pass(self, steps: Sequence[Step], units: Sequence[WorkUnit], pass_dir: Path, options: PassOptions, on_done: OnShardDone) -> None:
        if not units:
            return
        items = [{"unit": json.dumps(unit.to_dict())} for unit in units]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        dataset = dataset.map_batches(
            _ShardWorker,
            fn_constructor_kwargs={"steps": list(steps), "pass_dir": str(pass_dir), "options": options},
            batch_size=1,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=min(self.workers, len(units))),
            num_cpus=1,
        )
        for row in dataset.iter_rows():
            on_done(json.loads(row["stats"]))

    def run_fit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return ray.get(ray.remote(num_cpus=1)(_call).remote(fn, *args))

    def close(self) -> None:
        if self._started_here:
            ray.shutdown()
            self._started_here = False


__all__ = ["RayExecutor", "setup_steps"]
