"""One map pass over one shard: read, run the fused map/filter steps, write.

Both executors call :func:`process_unit`; that is what makes the local and
Ray executors produce the same rows. A shard is done when its completion
marker exists; outputs are renamed into place before the marker is written.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator import storage
from curator.config import InputSpec
from curator.errors import ConfigError, StepError
from curator.shards import AtomicParquetWriter, InputReader, WorkUnit, chunk_paths, write_json_atomic
from curator.steps import FilterResult, FilterStep, Step


@dataclass
class PassOptions:
    input: InputSpec
    batch_size: int = 2000
    on_bad_input: str = "quarantine"
    fail_fast: bool = False
    #: "stat" (size + mtime) or "hash" (size + content hash) of each unit's input
    fingerprint: str = "stat"
    row_group_rows: int = 100_000
    max_shard_rows: int = 1_000_000


def kept_path(pass_dir: Path, unit: WorkUnit) -> Path:
    return pass_dir / "kept" / f"{unit.shard}.parquet"


def rejected_path(pass_dir: Path, unit: WorkUnit) -> Path:
    return pass_dir / "rejected" / f"{unit.shard}.parquet"


def remove_outputs(pass_dir: Path, unit: WorkUnit) -> None:
    """Delete a unit's kept and rejected shards (every chunk) and any temporary files."""
    for first in (kept_path(pass_dir, unit), rejected_path(pass_dir, unit)):
        for path in chunk_paths(first):
            path.unlink(missing_ok=True)
        for tmp in first.parent.glob(f".{glob.escape(first.stem)}.*.tmp"):
            tmp.unlink(missing_ok=True)


def prune_stale(pass_dir: Path, units: Sequence[WorkUnit]) -> list[str]:
    """Delete markers and shards of units this pass no longer has; returns their shard names.

    Units change when a big input is split differently (another ``unit_rows``,
    or the file changed size) or an earlier pass wrote another number of
    shards; what the old units wrote would otherwise be counted twice.
    """
    current = {u.shard for u in units}
    stale: set[str] = set()
    for folder, suffix in (("_done", ".json"), ("kept", ".parquet"), ("rejected", ".parquet")):
        for path in (pass_dir / folder).glob(f"*{suffix}"):
            shard = path.name.split(".", 1)[0]  # shard names hold no dot: part-00000.c1.parquet -> part-00000
            if shard not in current:
                stale.add(shard)
    for shard in stale:
        unit = WorkUnit(-1, "", shard, "")
        remove_outputs(pass_dir, unit)
        marker_path(pass_dir, unit).unlink(missing_ok=True)
    return sorted(stale)


def marker_path(pass_dir: Path, unit: WorkUnit) -> Path:
    return pass_dir / "_done" / f"{unit.shard}.json"


def input_fingerprint(path: str, mode: str = "stat") -> dict[str, Any] | None:
    """What a completion marker covers: the input's size and modification time, or its content hash.

    ``stat`` is free and catches any rewrite (even one that keeps the bytes);
    ``hash`` (``--fingerprint hash``) reads the whole file, so a file copied
    or touched without a change is not redone, and a change that keeps size
    and mtime is. A unit that covers part of a file fingerprints the whole
    file: any change may move the ranges.
    """
    if storage.is_remote(path):
        return storage.fingerprint(path, mode)
    try:
        st = os.stat(path)
    except OSError:
        return None
    if mode == "hash":
        return {"size": st.st_size, "blake2b": _content_hash(path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    """Cached by the file's stat, so the units of one big file hash it once per process.

    ``ctime`` changes on every write and every ``utime`` and cannot be set back,
    so an edit that restores size and mtime still misses the cache.
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def shard_done(pass_dir: Path, unit: WorkUnit, fingerprint: str = "stat") -> bool:
    """True when the shard's marker exists and its input has not changed since (else: redo it)."""
    marker = marker_path(pass_dir, unit)
    try:
        recorded = json.loads(marker.read_text()).get("fingerprint", "absent")
    except (OSError, ValueError):
        return False
    if recorded == "absent":  # a marker from a curator that did not fingerprint
        return True
    return bool(recorded == input_fingerprint(unit.path, fingerprint))


def setup_steps(steps: Sequence[Step]) -> None:
    for step in steps:
        step.check_dependencies()
        step.setup()


def process_unit(unit: WorkUnit, steps: Sequence[Step], pass_dir: Path, options: PassOptions) -> dict[str, Any]:
    """Process one shard end to end and return its stats (also written as its marker)."""
    started = time.perf_counter()
    reader = InputReader(options.input, options.batch_size, options.on_bad_input)
    kept_writer = AtomicParquetWriter(kept_path(pass_dir, unit), row_group_rows=options.row_group_rows, max_rows=options.max_shard_rows)
    rejected_writer = AtomicParquetWriter(rejected_path(pass_dir, unit), row_group_rows=options.row_group_rows, max_rows=options.max_shard_rows)
    rejected: dict[str, Counter[str]] = defaultdict(Counter)
    errors: dict[str, list[str]] = defaultdict(list)
    seconds: defaultdict[str, float] = defaultdict(float)  # a Counter holds ints
    n_input = 0
    fingerprint = input_fingerprint(unit.path, options.fingerprint)
    try:
        for good, bad in reader.read(unit):
            n_input += good.num_rows
            if bad is not None and bad.num_rows:
                n_input += bad.num_rows
                for reason in bad.column("reject_reason").to_pylist():
                    rejected["read"][_reason_key(reason)] += 1
                rejected_writer.write(bad)
            kept, out_rejected = run_steps(good, steps, options.fail_fast, rejected, errors, seconds, unit.origin or unit.path)
            kept_writer.write(kept)
            for table in out_rejected:
                rejected_writer.write(table)
        kept_writer.close()
        rejected_writer.close()
    except BaseException:
        kept_writer.abort()
        rejected_writer.abort()
        raise
    stats = {
        "shard": unit.shard,
        "source": unit.path,
        "input": n_input,
        "kept": kept_writer.rows,
        "rejected": {step: dict(reasons) for step, reasons in rejected.items()},
        "errors": {step: msgs[:5] for step, msgs in errors.items()},
        "unreadable": reader.unreadable,
        "warnings": reader.warnings,
        "step_seconds": dict(seconds),
        "seconds": time.perf_counter() - started,
        "fingerprint": fingerprint,
    }
    write_json_atomic(marker_path(pass_dir, unit), stats)
    return stats


def _reason_key(reason: str) -> str:
    """The counter key for a reason: the part before ':' (details stay in the row)."""
    return reason.split(":", 1)[0]


def run_steps(
    batch: pa.Table,
    steps: Sequence[Step],
    fail_fast: bool,
    rejected: dict[str, Counter[str]],
    errors: dict[str, list[str]],
    seconds: defaultdict[str, float],
    source: str = "",
) -> tuple[pa.Table, list[pa.Table]]:
    """Run the fused steps over one batch. Returns (kept rows, rejected tables)."""
    out_rejected: list[pa.Table] = []
    current = batch
    for step in steps:
        if current.num_rows == 0:
            break
        t0 = time.perf_counter()
        try:
            results, ok_rows, failures = _call_isolating_failures(step, current, fail_fast)
            result = _concat_results(step, results) if results else None
        except StepError as exc:
            # The step broke its contract (wrong type, length or mask). That is
            # the plugin's bug, not the rows': with --fail-fast the run stops,
            # otherwise every row of the batch is set aside with the reason.
            if fail_fast:
                raise
            message = str(exc)[:500]
            out_rejected.append(_with_reject(current, step.name, [f"error: StepError: {message}"] * current.num_rows, source))
            rejected[step.name]["error"] += current.num_rows
            errors[step.name].append(f"StepError: {message}")
            current = current.slice(0, 0)
            seconds[step.name] += time.perf_counter() - t0
            break
        if failures:
            failed_idx = [i for i, _ in failures]
            failed = current.take(pa.array(failed_idx, pa.int64()))
            messages = [msg for _, msg in failures]
            out_rejected.append(_with_reject(failed, step.name, [f"error: {m}" for m in messages], source))
            rejected[step.name]["error"] += len(failures)
            errors[step.name].extend(messages)
            current = current.take(pa.array(ok_rows, pa.int64())) if ok_rows is not None else current
        if current.num_rows and result is not None:
            current, dropped = _apply(step, current, result, source)
            if dropped is not None and dropped.num_rows:
                out_rejected.append(dropped)
                for reason in dropped.column("reject_reason").to_pylist():
                    rejected[step.name][_reason_key(reason)] += 1
        seconds[step.name] += time.perf_counter() - t0
    return current, out_rejected


def _call(step: Step, table: pa.Table) -> Any:
    return step.filter(table) if isinstance(step, FilterStep) else step.process(table)  # type: ignore[attr-defined]


def _call_isolating_failures(step: Step, table: pa.Table, fail_fast: bool) -> tuple[list[Any], list[int] | None, list[tuple[int, str]]]:
    """Call the step on the whole batch; if it raises, bisect to find the rows that make it raise.

    Returns (results of the parts that worked, in order; the row indices they
    cover, or None when the whole batch worked; [(row index, error summary)]).
    """
    try:
        return [_check(step, _call(step, table), table.num_rows)], None, []
    except StepError:
        raise
    except Exception as exc:
        if fail_fast:
            raise StepError(f"step {step.name!r} raised {type(exc).__name__}: {exc}\n{traceback.format_exc()}") from exc
        _raise_if_not_about_rows(step, table, exc)
    results: list[Any] = []
    ok_rows: list[int] = []
    failures: list[tuple[int, str]] = []

    def visit(offset: int, length: int) -> None:
        part = table.slice(offset, length)
        try:
            results.append(_check(step, _call(step, part), length))
            ok_rows.extend(range(offset, offset + length))
        except StepError:
            raise
        except Exception as exc:
            if length == 1:
                failures.append((offset, f"{type(exc).__name__}: {exc}"[:500]))
                return
            half = length // 2
            visit(offset, half)
            visit(offset + half, length - half)

    visit(0, table.num_rows)
    return results, ok_rows, failures


def _raise_if_not_about_rows(step: Step, table: pa.Table, exc: Exception) -> None:
    """A step that raises the same error on an empty batch fails whatever the rows hold.

    Broken SQL in ``sql_filter``, a column that does not exist, a missing file:
    quarantining every row one by one would only hide the mistake, so the run
    stops with the step's name and the error instead.
    """
    try:
        _call(step, table.slice(0, 0))
    except Exception as again:  # noqa: BLE001 (any error: compared with the first)
        if type(again) is type(exc) and str(again) == str(exc):
            raise ConfigError(
                f"step {step.name!r} ({type(step).name}) fails on any batch, even an empty one, so no row is at fault: "
                f"{type(exc).__name__}: {str(exc)[:1000]}\n(the batch has columns: {', '.join(table.column_names)})"
            ) from None


def _to_array(values: Any, length: int, what: str) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise StepError(f"{what} is a single {type(values).__name__}, expected one value per row")
        try:
            values = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise StepError(f"{what}: values of mixed or unsupported types ({type(exc).__name__}: {exc})"[:500]) from None
    if len(values) != length:
        raise StepError(f"{what} has {len(values)} values for {length} rows")
    return values


def _keep_mask(step: Step, keep: Any, length: int) -> np.ndarray:
    """The keep mask as numpy booleans; anything else (strings such as "no", None, floats) is refused.

    numpy would turn every non-empty string into True, i.e. keep every row silently.
    """
    what = f"filter {step.name!r}: keep mask"
    if isinstance(keep, (pa.Array, pa.ChunkedArray)):
        if not pa.types.is_boolean(keep.type):
            raise StepError(f"{what} has type {keep.type}, expected booleans")
        if keep.null_count:
            raise StepError(f"{what} has {keep.null_count} nulls; give True or False for every row")
        mask = np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
    else:
        try:
            mask = np.asarray(keep)
        except (ValueError, TypeError) as exc:
            raise StepError(f"{what} is not a flat list of booleans: {exc}") from None
        if mask.size == 0 and length == 0:
            return np.zeros(0, dtype=bool)
        if mask.dtype == object:
            odd = next((v for v in mask.ravel() if not isinstance(v, (bool, np.bool_))), None)
            if odd is not None:
                raise StepError(f"{what} holds {type(odd).__name__} values such as {odd!r}, expected True/False")
            mask = mask.astype(bool)
        elif mask.dtype.kind in "iu" and mask.size and np.isin(mask, (0, 1)).all():
            mask = mask.astype(bool)
        elif mask.dtype.kind != "b":
            sample = mask.ravel()[0] if mask.size else None
            raise StepError(f"{what} holds {mask.dtype} values such as {sample!r}, expected True/False")
    if mask.shape != (length,):
        raise StepError(f"{what} has {mask.size} values for {length} rows")
    return mask


def _reasons(step: Step, reasons: Any, length: int, keep: np.ndarray) -> list[str | None]:
    """One reason per row; those of rejected rows must be strings (or None: the step's name)."""
    if reasons is None:
        return [None] * length
    if isinstance(reasons, (pa.Array, pa.ChunkedArray)):
        reasons = reasons.to_pylist()
    if isinstance(reasons, (str, bytes)) or not hasattr(reasons, "__len__"):
        raise StepError(f"filter {step.name!r}: reasons is a single {type(reasons).__name__}, expected one per row")
    out = list(reasons)
    if len(out) != length:
        raise StepError(f"filter {step.name!r}: {len(out)} reasons for {length} rows")
    odd = next((r for r, k in zip(out, keep) if not k and r is not None and not isinstance(r, str)), None)
    if odd is not None:
        raise StepError(f"filter {step.name!r}: a reason is {type(odd).__name__} ({odd!r}), expected a string or None")
    return out


def _check(step: Step, result: Any, length: int) -> Any:
    """Validate a step's answer against the contract; a broken contract is a StepError naming the step."""
    if isinstance(step, FilterStep):
        if not isinstance(result, FilterResult):
            if isinstance(result, tuple) and 1 <= len(result) <= 3:
                result = FilterResult(*result)
            else:
                raise StepError(f"filter {step.name!r} returned {type(result).__name__}, expected FilterResult")
        keep = _keep_mask(step, result.keep, length)
        reasons = _reasons(step, result.reasons, length, keep)
        if not isinstance(result.columns, Mapping):
            raise StepError(f"filter {step.name!r}: columns is {type(result.columns).__name__}, expected a dict")
        columns = {_suffix(step, k): _to_array(v, length, f"filter {step.name!r} column {k!r}") for k, v in dict(result.columns).items()}
        return FilterResult(keep, reasons, columns)
    if not isinstance(result, Mapping):
        raise StepError(f"map step {step.name!r} returned {type(result).__name__}, expected a dict of columns")
    return {_suffix(step, k): _to_array(v, length, f"map step {step.name!r} column {k!r}") for k, v in result.items()}


def _suffix(step: Step, key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise StepError(f"step {step.name!r} returned a column named {key!r}, expected a non-empty string")
    return key


def _concat_results(step: Step, results: list[Any]) -> Any:
    if len(results) == 1:
        return results[0]
    try:
        if isinstance(step, FilterStep):
            keep = np.concatenate([r.keep for r in results]) if results else np.zeros(0, bool)
            reasons = [x for r in results for x in r.reasons]
            keys = results[0].columns.keys() if results else []
            columns = {k: _concat_column(k, [r.columns.get(k) for r in results]) for k in keys}
            return FilterResult(keep, reasons, columns)
        keys = results[0].keys() if results else []
        return {k: _concat_column(k, [r.get(k) for r in results]) for k in keys}
    except (pa.ArrowException, TypeError, KeyError) as exc:
        raise StepError(f"step {step.name!r} returned different columns or types for parts of one batch: {exc}"[:500]) from None


def _concat_column(name: str, parts: list[pa.Array | None]) -> pa.Array:
    if any(p is None for p in parts):
        raise KeyError(f"column {name!r} missing from some parts")
    return pa.concat_arrays(parts)


def _apply(step: Step, table: pa.Table, result: Any, source: str) -> tuple[pa.Table, pa.Table | None]:
    columns = result.columns if isinstance(step, FilterStep) else result
    for suffix, values in columns.items():
        name = step.column(suffix)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, values)
        else:
            table = table.append_column(name, values)
    if not isinstance(step, FilterStep):
        return table, None
    keep = result.keep
    if keep.all():
        return table, None
    mask = pa.array(keep)
    dropped = table.filter(pc.invert(mask))
    reasons = [r or step.name for r, k in zip(result.reasons, keep) if not k]
    return table.filter(mask), _with_reject(dropped, step.name, reasons, source)


def _with_reject(table: pa.Table, step_name: str, reasons: list[str], source: str) -> pa.Table:
    n = table.num_rows
    table = table.append_column("reject_step", pa.array([step_name] * n, pa.string()))
    table = table.append_column("reject_reason", pa.array(reasons, pa.string()))
    if "source" not in table.column_names:
        table = table.append_column("source", pa.array([source] * n, pa.string()))
    return table
