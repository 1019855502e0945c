"""Run a pipeline: split it into map passes and fit steps, resume what was done.

Consecutive map/filter steps fuse into one pass over the data; a fit step sits
between passes and sees the previous pass's kept rows through DuckDB. Pass 0
also ingests the input (JSONL or Parquet) into the data contract, so a
pipeline that starts with a fit step still gets Parquet to query.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from curator import catalog, storage
from curator import stats as run_stats
from curator.config import Pipeline, StepSpec, validate_pipeline
from curator.errors import BadInputError, ConfigError, CuratorError, StepError
from curator.executors import Executor, make_executor
from curator.passes import PassOptions, kept_path, marker_path, prune_stale, rejected_path, shard_done
from curator.registry import StepRegistry, name_plugins, step_failure
from curator.shards import WorkUnit, chunk_paths, discover_inputs, make_units, write_json_atomic
from curator.steps import FitContext, FitStep, Step

LOCK_FILE = ".curator.lock"
#: options that change how a run is laid out or checked, never which rows it keeps:
#: a run may be resumed with other values (a different split redoes the units it changes)
LAYOUT_OPTIONS = ("step_timeout", "fingerprint", "row_group_rows", "max_shard_rows", "unit_rows", "unit_mb")


class RunInUseError(CuratorError):
    """Another live process holds the run directory's lock."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold RUN/.curator.lock for the whole run.

    ``flock`` is released by the kernel when the holder dies, however it dies,
    so a lock left by a killed run (its pid gone) is simply taken over; the
    file's content only tells a second run who holds it.
    """
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(f"{run_dir} is in use by {_holder(fd)}; wait for it to finish or use another --output") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        info = {}
    if not info:
        return "another curator run"
    return f"curator run pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"


@dataclass
class Segment:
    """Either a map pass (several map/filter steps) or one fit step."""

    kind: str  # "pass" | "fit"
    specs: list[StepSpec] = field(default_factory=list)


def plan(pipeline: Pipeline, registry: StepRegistry) -> list[Segment]:
    segments: list[Segment] = [Segment("pass")]
    for spec in pipeline.steps:
        kind = registry.get(spec.type).kind
        if kind == "fit":
            segments.append(Segment("fit", [spec]))
        else:
            if segments[-1].kind != "pass":
                segments.append(Segment("pass"))
            segments[-1].specs.append(spec)
    return segments


def _pipeline_hash(pipeline: Pipeline, inputs: list[str]) -> str:
    body = json.dumps(
        {
            "options": pipeline.options.model_dump(mode="json", exclude={"steps": True, "input": {"path"}, **dict.fromkeys(LAYOUT_OPTIONS, True)}),
            "steps": [s.__dict__ for s in pipeline.steps],
            "inputs": inputs,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def run_pipeline(
    pipeline: Pipeline,
    output: str | Path,
    *,
    registry: StepRegistry | None = None,
    inputs: list[str] | None = None,
    executor: str | Executor = "local",
    workers: int = 1,
    address: str | None = None,
    fail_fast: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    isolate: bool | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``pipeline`` into ``output``; returns the run's stats.

    ``isolate``: run map steps in worker processes even with one worker, so a
    step that crashes or hangs costs its shard, not the run (None: only when
    ``workers`` > 1 or ``step_timeout`` is set).
    """
    if registry is None:
        from curator.plugins import get_registry

        registry = get_registry()
    validate_pipeline(pipeline, registry)
    # a run in an object store is written in a local staging directory and mirrored unit by unit
    mirror = storage.RunMirror(str(output), storage.staging_dir(str(output))) if storage.is_remote(output) else None
    run_dir = mirror.local.resolve() if mirror else Path(output).resolve()
    patterns = inputs or pipeline.options.input.paths
    if not patterns:
        raise ConfigError(f"{pipeline.source}: no input: pass --input GLOB or set input.path")
    files = discover_inputs(patterns)
    opts = pipeline.options
    # a big file is split into units of unit_rows rows (or unit_mb as stored), so every worker has work
    units = make_units(files, opts.unit_rows, None if opts.unit_rows else int(opts.unit_mb * 2**20), opts.input.format)
    digest = _pipeline_hash(pipeline, files)

    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        if mirror is not None:
            if overwrite:
                mirror.clear()
            else:
                mirror.pull()  # resume: the store's markers say which units are done
        summary = _run_locked(pipeline, run_dir, registry, files, units, digest, executor, workers, address, fail_fast, progress, overwrite, isolate, mirror)
    if mirror is not None:
        summary["run"] = mirror.url
    return summary


def _clear_run_dir(run_dir: Path) -> None:
    """--overwrite: empty the run directory but keep the lock file we hold."""
    for child in run_dir.iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _run_locked(
    pipeline: Pipeline,
    run_dir: Path,
    registry: StepRegistry,
    files: list[str],
    units: list[WorkUnit],
    digest: str,
    executor: str | Executor,
    workers: int,
    address: str | None,
    fail_fast: bool,
    progress: bool,
    overwrite: bool,
    isolate: bool | None,
    mirror: storage.RunMirror | None = None,
) -> dict[str, Any]:
    manifest_path = run_dir / catalog.MANIFEST
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous.get("pipeline_hash") != digest and not overwrite:
            raise ConfigError(f"{run_dir} holds a run of a different pipeline or input ({previous.get('pipeline')}); use another --output, or --overwrite to start it again")
    if overwrite:
        _clear_run_dir(run_dir)  # --overwrite always starts afresh, even over the same pipeline

    segments = plan(pipeline, registry)
    steps_meta = [{"name": s.name, "type": s.type, "kind": registry.get(s.type).kind} for s in pipeline.steps]
    passes_meta: list[dict[str, Any]] = []
    for seg in segments:
        if seg.kind == "pass":
            passes_meta.append({"dir": f"pass-{len(passes_meta)}", "steps": [s.name for s in seg.specs], "shards": len(units)})
    manifest = {
        "pipeline": pipeline.name,
        "source": pipeline.source,
        "pipeline_hash": digest,
        "inputs": files,
        "input_spec": pipeline.options.input.model_dump(),
        "steps": steps_meta,
        "passes": passes_meta,
        "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "artifacts": {},
    }
    if mirror is not None:
        manifest["output"] = mirror.url
    write_json_atomic(manifest_path, manifest)
    if Path(pipeline.source).is_file():
        (run_dir / "pipeline.yaml").write_text(Path(pipeline.source).read_text())
    if mirror is not None:
        mirror.push([manifest_path])  # the store shows a running run at once

    own_executor = isinstance(executor, str)
    engine: Executor = (
        make_executor(
            executor,
            workers,
            address,
            temp_dir=None,
            step_timeout=pipeline.options.step_timeout,
            on_step_failure="fail" if fail_fast or pipeline.options.on_bad_input == "fail" else "quarantine",
            isolate=isolate,
        )
        if isinstance(executor, str)
        else executor
    )
    try:
        summary = _run_segments(pipeline, run_dir, registry, segments, units, engine, manifest, fail_fast, progress, mirror)
        if mirror is not None:
            mirror.push_all()
    except BaseException as exc:
        # the manifest says the run did not finish, and why (stats and the report show it)
        manifest["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json_atomic(manifest_path, manifest)
        if mirror is not None:
            with contextlib.suppress(Exception):  # the store may be what failed; the first error is the one to see
                mirror.push_all()
        raise
    finally:
        if own_executor:
            engine.close()
    return summary


def _run_segments(
    pipeline: Pipeline,
    run_dir: Path,
    registry: StepRegistry,
    segments: list[Segment],
    units: list[WorkUnit],
    engine: Executor,
    manifest: dict[str, Any],
    fail_fast: bool,
    progress: bool,
    mirror: storage.RunMirror | None = None,
) -> dict[str, Any]:
    manifest_path = run_dir / catalog.MANIFEST
    results: dict[str, dict[str, Any]] = {}
    pass_index = 0
    current_units = units
    for seg in segments:
        if seg.kind == "pass":
            pass_dir = run_dir / f"pass-{pass_index}"
            steps = [spec.build(registry, results, pipeline.source) for spec in seg.specs]
            layout = {"row_group_rows": pipeline.options.row_group_rows, "max_shard_rows": pipeline.options.max_shard_rows}
            if pass_index == 0:
                options = PassOptions(pipeline.options.input, pipeline.options.batch_size, pipeline.options.on_bad_input, fail_fast, pipeline.options.fingerprint, **layout)
            else:
                # Later passes read the contract shards the previous pass wrote (their own files: stat is enough).
                contract = pipeline.options.input.model_copy(update={"format": "parquet", "id_column": "id", "text_column": "text"})
                options = PassOptions(contract, pipeline.options.batch_size, "fail", fail_fast, "stat", **layout)
            try:
                _run_pass(engine, steps, current_units, pass_dir, options, progress, label=",".join(s.name for s in steps) or "ingest", mirror=mirror)
            except StepError as exc:
                raise StepError(name_plugins(registry, steps, str(exc))) from exc
            # the next pass reads each kept shard (a big unit may have written several) as one unit
            current_units = [WorkUnit(u.index, str(path), path.stem.replace(".", "-"), u.id_prefix, u.origin or u.path) for u in current_units for path in chunk_paths(kept_path(pass_dir, u))]
            pass_index += 1
        else:
            spec = seg.specs[0]
            step = spec.build(registry, results, pipeline.source)
            assert isinstance(step, FitStep)
            try:
                results[step.name] = _run_fit(engine, step, run_dir, [Path(u.path) for u in current_units], results, spec, progress)
            except CuratorError:
                raise
            except Exception as exc:  # the plugin's bug: one line naming plugin and step, not a traceback
                raise StepError(step_failure(registry, step, exc, "fit")) from exc
            manifest["artifacts"][step.name] = str(Path("artifacts") / step.name)
            write_json_atomic(manifest_path, manifest)
    catalog.write_database(run_dir)
    duplicates = _duplicate_ids_across_shards(run_dir)
    if duplicates["count"] and pipeline.options.on_bad_input == "fail":
        raise BadInputError(f"ids repeated across input files, e.g. {duplicates['examples']}; see `curator stats --run {run_dir}`")
    manifest["status"] = "done"
    manifest.pop("error", None)
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json_atomic(manifest_path, manifest)
    summary = run_stats.collect(run_dir)
    summary["duplicate_ids"] = duplicates
    write_json_atomic(run_dir / "stats.json", summary)
    return summary


def _duplicate_ids_across_shards(run_dir: Path) -> dict[str, Any]:
    """Ids are unique within a shard by construction; across shards one pass over the id column tells."""
    connection = catalog.sandboxed_connect(":memory:", run_dir)
    try:
        catalog.create_views(connection, run_dir, temporary=True)
        rows = connection.execute("SELECT id, count(*) FROM documents WHERE reject_step IS DISTINCT FROM 'read' GROUP BY id HAVING count(*) > 1 ORDER BY id").fetchall()
    finally:
        connection.close()
    return {"count": len(rows), "examples": [r[0] for r in rows[:5]]}


def _run_pass(engine: Executor, steps: list[Step], units: list[WorkUnit], pass_dir: Path, options: PassOptions, progress: bool, label: str, mirror: storage.RunMirror | None = None) -> None:
    prune_stale(pass_dir, units)
    todo = [u for u in units if not shard_done(pass_dir, u, options.fingerprint)]
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=f"{pass_dir.name} [{label}]", unit="shard", disable=not progress or None, leave=True)
    rows = {"in": 0, "kept": 0}
    by_shard = {u.shard: u for u in todo}

    def on_done(shard_stats: dict[str, Any]) -> None:
        unit = by_shard.get(shard_stats.get("shard", ""))
        if mirror is not None and unit is not None:
            # the unit's shards, then its marker: a marker in the store means its rows are there
            outputs = chunk_paths(kept_path(pass_dir, unit)) + chunk_paths(rejected_path(pass_dir, unit))
            mirror.push([*outputs, marker_path(pass_dir, unit)])
        rows["in"] += shard_stats["input"]
        rows["kept"] += shard_stats["kept"]
        bar.set_postfix_str(f"rows {rows['in']:,} kept {rows['kept']:,}")
        bar.update(1)

    try:
        engine.run_pass(steps, todo, pass_dir, options, on_done)
    finally:
        bar.close()


def _fingerprint(files: list[Path]) -> list[tuple[str, int]]:
    return [(f.name, os.path.getsize(f)) for f in files if f.exists()]


def _run_fit(engine: Executor, step: FitStep, run_dir: Path, corpus: list[Path], results: dict[str, dict[str, Any]], spec: StepSpec, progress: bool) -> dict[str, Any]:
    artifact_dir = run_dir / "artifacts" / step.name
    key_body: dict[str, Any] = {"step": step.config_fingerprint(), "refs": {t: results.get(t) for _, t, _ in spec.references()}}
    if step.depends_on_corpus:
        key_body["corpus"] = _fingerprint(corpus)
    key = hashlib.sha256(json.dumps(key_body, sort_keys=True, default=str).encode()).hexdigest()
    result_path = artifact_dir / "result.json"
    if result_path.exists():
        cached = json.loads(result_path.read_text())
        if cached.get("key") == key:
            if progress:
                tqdm.write(f"fit {step.name}: cached ({result_path})")
            return cached["result"]
    artifact_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = engine.run_fit(_fit_in_worker, step, str(run_dir), str(artifact_dir), [str(p) for p in corpus], results, engine.workers)
    write_json_atomic(result_path, {"key": key, "result": result, "seconds": time.perf_counter() - started})
    if progress:
        tqdm.write(f"fit {step.name}: {json.dumps(result, default=str)[:200]} ({time.perf_counter() - started:.1f}s)")
    return result


def _fit_in_worker(step: FitStep, run_dir: str, artifact_dir: str, corpus: list[str], results: dict[str, Any], workers: int) -> dict[str, Any]:
    """Runs where the executor puts fit steps (this process, or a Ray task)."""
    step.check_dependencies()
    corpus_view = "SELECT * FROM read_parquet([" + ", ".join(catalog.sql_string(c) for c in corpus) + "], union_by_name = true)" if corpus else catalog.EMPTY_KEPT
    connection = catalog.connect(Path(run_dir), extra_views={"corpus": corpus_view})
    try:
        ctx = FitContext(run_dir=Path(run_dir), artifact_dir=Path(artifact_dir), connection=connection, results=results, corpus_files=[Path(c) for c in corpus], workers=workers)
        result = step.fit(ctx)
    finally:
        connection.close()
    json.dumps(result)  # a result must be JSON: it is cached and substituted into later steps
    return result
