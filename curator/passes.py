"""One map pass over one shard: read, run the fused map/filter steps, write.

Both executors call :func:`process_unit`; that is what makes the local and
Ray executors produce the same rows. A shard is done when its completion
marker exists; outputs are renamed into place before the marker is written.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import InputSpec
from curator.errors import StepError
from curator.shards import AtomicParquetWriter, InputReader, WorkUnit, write_json_atomic
from curator.steps import FilterResult, FilterStep, Step


@dataclass
class PassOptions:
    input: InputSpec
    batch_size: int = 2000
    on_bad_input: str = "quarantine"
    fail_fast: bool = False


def kept_path(pass_dir: Path, unit: WorkUnit) -> Path:
    return pass_dir / "kept" / f"{unit.shard}.parquet"


def rejected_path(pass_dir: Path, unit: WorkUnit) -> Path:
    return pass_dir / "rejected" / f"{unit.shard}.parquet"


def marker_path(pass_dir: Path, unit: WorkUnit) -> Path:
    return pass_dir / "_done" / f"{unit.shard}.json"


def setup_steps(steps: Sequence[Step]) -> None:
    for step in steps:
        step.check_dependencies()
        step.setup()


def process_unit(unit: WorkUnit, steps: Sequence[Step], pass_dir: Path, options: PassOptions) -> dict[str, Any]:
    """Process one shard end to end and return its stats (also written as its marker)."""
    started = time.perf_counter()
    reader = InputReader(options.input, options.batch_size, options.on_bad_input)
    kept_writer = AtomicParquetWriter(kept_path(pass_dir, unit))
    rejected_writer = AtomicParquetWriter(rejected_path(pass_dir, unit))
    rejected: dict[str, Counter[str]] = defaultdict(Counter)
    errors: dict[str, list[str]] = defaultdict(list)
    seconds: Counter[str] = Counter()
    n_input = 0
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
    seconds: Counter[str],
    source: str = "",
) -> tuple[pa.Table, list[pa.Table]]:
    """Run the fused steps over one batch. Returns (kept rows, rejected tables)."""
    out_rejected: list[pa.Table] = []
    current = batch
    for step in steps:
        if current.num_rows == 0:
            break
        t0 = time.perf_counter()
        results, ok_rows, failures = _call_isolating_failures(step, current, fail_fast)
        if failures:
            failed_idx = [i for i, _ in failures]
            failed = current.take(pa.array(failed_idx, pa.int64()))
            messages = [msg for _, msg in failures]
            out_rejected.append(_with_reject(failed, step.name, [f"error: {m}" for m in messages], source))
            rejected[step.name]["error"] += len(failures)
            errors[step.name].extend(messages)
            current = current.take(pa.array(ok_rows, pa.int64())) if ok_rows is not None else current
        if current.num_rows:
            current, dropped = _apply(step, current, results, source)
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


def _to_array(values: Any, length: int, what: str) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values)
    if len(values) != length:
        raise StepError(f"{what} has {len(values)} values for {length} rows")
    return values


def _check(step: Step, result: Any, length: int) -> Any:
    """Validate a step's answer against the contract (a broken contract is a bug: fail loudly)."""
    if isinstance(step, FilterStep):
        if not isinstance(result, FilterResult):
            if isinstance(result, tuple) and 1 <= len(result) <= 3:
                result = FilterResult(*result)
            else:
                raise StepError(f"filter {step.name!r} returned {type(result).__name__}, expected FilterResult")
        keep = np.asarray(result.keep.to_numpy(zero_copy_only=False) if isinstance(result.keep, (pa.Array, pa.ChunkedArray)) else result.keep, dtype=bool)
        if keep.shape != (length,):
            raise StepError(f"filter {step.name!r}: keep mask has {keep.size} values for {length} rows")
        reasons = list(result.reasons) if result.reasons is not None else [None] * length
        if len(reasons) != length:
            raise StepError(f"filter {step.name!r}: {len(reasons)} reasons for {length} rows")
        columns = {k: _to_array(v, length, f"filter {step.name!r} column {k!r}") for k, v in dict(result.columns).items()}
        return FilterResult(keep, reasons, columns)
    if not isinstance(result, dict):
        raise StepError(f"map step {step.name!r} returned {type(result).__name__}, expected a dict of columns")
    return {k: _to_array(v, length, f"map step {step.name!r} column {k!r}") for k, v in result.items()}


def _concat_results(step: Step, results: list[Any]) -> Any:
    if len(results) == 1:
        return results[0]
    if isinstance(step, FilterStep):
        keep = np.concatenate([r.keep for r in results]) if results else np.zeros(0, bool)
        reasons = [x for r in results for x in r.reasons]
        keys = results[0].columns.keys() if results else []
        columns = {k: pa.concat_arrays([r.columns[k] for r in results]) for k in keys}
        return FilterResult(keep, reasons, columns)
    keys = results[0].keys() if results else []
    return {k: pa.concat_arrays([r[k] for r in results]) for k in keys}


def _apply(step: Step, table: pa.Table, results: list[Any], source: str) -> tuple[pa.Table, pa.Table | None]:
    result = _concat_results(step, results)
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
