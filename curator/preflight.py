"""Checks that need the input: run a pipeline's model-free steps on zero rows of its columns.

``curator validate --input ...`` reads the columns of one input file (the
Parquet schema, or the first lines of a JSONL file), builds an empty batch
with them and calls each map/filter step on it in order, the way a run would.
SQL that does not parse or names a column the input does not have fails
here, in DuckDB's own words, instead of setting every row of the run aside.

Only steps that need no model and no fit result are called (their columns
are then known to the next step); the check stops at the first step it cannot
call, so it never reports a column a later step would have added.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from curator.config import Pipeline
from curator.errors import ConfigError
from curator.passes import _apply, _call, _check
from curator.registry import StepRegistry
from curator.shards import InputReader, discover_inputs, make_units


def input_columns(pipeline: Pipeline, patterns: list[str]) -> tuple[str, pa.Table]:
    """(the file read, an empty batch with the columns steps will see) for the first input file."""
    files = discover_inputs(patterns)
    unit = make_units(files[:1])[0]
    reader = InputReader(pipeline.options.input, batch_size=1000, on_bad_input="quarantine")
    return unit.path, reader.read_prefix(unit).slice(0, 0)


def check_steps_on_input(pipeline: Pipeline, registry: StepRegistry, patterns: list[str]) -> list[str]:
    """Problems found by calling the pipeline's steps on an empty batch of the input's columns."""
    try:
        path, table = input_columns(pipeline, patterns)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (the run itself reports unreadable files by name)
        return [f"input {', '.join(patterns)}: cannot read its columns to check the steps: {type(exc).__name__}: {exc}"]
    errors: list[str] = []
    for spec in pipeline.steps:
        cls = registry.get(spec.type)
        if cls.kind == "fit":
            continue  # fit steps write artifacts; the rows' columns stay as they are
        if cls.holds_model or spec.references():
            break  # needs a model or a fit result: its columns are unknown until it runs
        try:
            step = spec.build(registry, {}, pipeline.source)
            step.setup()
            result: Any = _check(step, _call(step, table), 0)
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()
            errors.append(f"{pipeline.source}:{spec.line}: step {spec.name!r} ({spec.type}): {' '.join(message)[:500]} (columns of {path}: {', '.join(table.column_names)})")
            break
        except Exception:  # noqa: BLE001 (not an SQL problem: the run will say more, with the rows)
            break
        table, _ = _apply(step, table, result, "")
    return errors
