"""The Ray executor: the only module that imports ray.

Map passes run as Ray Data ``map_batches`` over a dataset with one row per
shard; each shard is processed whole, with the same code as the local
executor, and its outputs are written atomically. That keeps shard-level
resumability and makes both executors produce the same rows.

* A pass with a step that holds a model (``Step.holds_model``: fastText,
  KenLM) runs on an **actor pool**: each actor receives the pickled steps
  once and calls ``setup()`` once, so the model loads once per actor.
* Other passes run as Ray **tasks** on Ray's pooled worker processes, which
  skips starting actors (about 2 s per pass on 2 cores); steps are still set
  up once per worker process (cached in the process by the pass's id).

Fit steps run as Ray tasks.

On a multi-node cluster (``--address``) every worker opens its own input and
writes its own shards: the driver ships only work-unit descriptions, so inputs
and the run directory must be on storage all nodes mount at the same path
(checked after each shard). Each shard's marker names the Ray node that wrote
it (``ray_node``). A shard whose node dies is retried by Ray on the nodes that
remain; its half-written files were never renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy, TaskPoolStrategy

from curator.errors import CuratorError
from curator.executors import OnShardDone
from curator.passes import PassOptions, marker_path, process_unit, setup_steps
from curator.shards import WorkUnit, write_json_atomic
from curator.steps import Step


def _one_cpu() -> None:
    """Hold Arrow to the one CPU Ray reserved for this worker (num_cpus=1).

    Arrow otherwise starts a thread per core in every worker: with N workers
    on N cores that is N x N threads fighting over the same cores.
    """
    pa.set_cpu_count(1)


def _process_rows(batch: pa.Table, steps: Sequence[Step], pass_dir: Path, options: PassOptions) -> pa.Table:
    stats = []
    node = ray.get_runtime_context().get_node_id()
    for unit_json in batch.column("unit").to_pylist():
        unit = WorkUnit.from_dict(json.loads(unit_json))
        shard_stats = process_unit(unit, steps, pass_dir, options)
        # The marker names the Ray node that wrote the shard (on a cluster: where to look for its logs).
        shard_stats["ray_node"] = node
        write_json_atomic(marker_path(pass_dir, unit), shard_stats)
        stats.append(json.dumps(shard_stats))
    return pa.table({"stats": pa.array(stats, pa.string())})


class _ShardWorker:
    """A Ray Data actor: set the steps up once, then process one shard per row."""

    def __init__(self, steps: Sequence[Step], pass_dir: str, options: PassOptions) -> None:
        self.steps = steps
        self.pass_dir = Path(pass_dir)
        self.options = options
        _one_cpu()
        setup_steps(steps)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _process_rows(batch, self.steps, self.pass_dir, self.options)


# steps already set up in this worker process, by pass id (task-based passes)
_ready_steps: dict[str, Sequence[Step]] = {}


def _shard_task(batch: pa.Table, pass_id: str, steps: Sequence[Step], pass_dir: str, options: PassOptions) -> pa.Table:
    """A Ray Data task: Ray reuses worker processes, so set the steps up once per process."""
    if pass_id not in _ready_steps:
        _one_cpu()
        setup_steps(steps)
        _ready_steps[pass_id] = steps
    return _process_rows(batch, _ready_steps[pass_id], Path(pass_dir), options)


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
        # curator prints its own progress; Ray Data's per-dataset INFO lines would interleave with it
        logging.getLogger("ray.data").setLevel(logging.WARNING)

    def run_pass(self, steps: Sequence[Step], units: Sequence[WorkUnit], pass_dir: Path, options: PassOptions, on_done: OnShardDone) -> None:
        if not units:
            return
        items = [{"unit": json.dumps(unit.to_dict())} for unit in units]
        dataset: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=len(items))
        size = min(self.workers, len(units))
        if any(step.holds_model for step in steps):
            dataset = dataset.map_batches(
                _ShardWorker,
                fn_constructor_kwargs={"steps": list(steps), "pass_dir": str(pass_dir), "options": options},
                batch_size=1,
                batch_format="pyarrow",
                compute=ActorPoolStrategy(size=size),
                num_cpus=1,
            )
        else:
            dataset = dataset.map_batches(
                # Ray's annotation wants a one-argument function; fn_kwargs supplies _shard_task's others
                _shard_task,  # type: ignore[arg-type]
                fn_kwargs={"pass_id": uuid.uuid4().hex, "steps": list(steps), "pass_dir": str(pass_dir), "options": options},
                batch_size=1,
                batch_format="pyarrow",
                compute=TaskPoolStrategy(size=size),
                num_cpus=1,
            )
        for row in dataset.iter_rows():
            stats = json.loads(row["stats"])
            if not (pass_dir / "_done" / f"{stats['shard']}.json").exists():
                # Workers write shards where they run: on a cluster the run directory must be shared.
                raise CuratorError(
                    f"shard {stats['shard']} was written by Ray node {stats.get('ray_node')} under {pass_dir}, which this driver "
                    "does not see: put --output (and the inputs) on storage every node mounts at the same path (docs/cluster.md)"
                )
            on_done(stats)

    def run_fit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return ray.get(ray.remote(num_cpus=1)(_call).remote(fn, *args))

    def close(self) -> None:
        if self._started_here:
            ray.shutdown()
            self._started_here = False


__all__ = ["RayExecutor", "setup_steps"]
