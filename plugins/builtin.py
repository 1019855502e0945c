"""Generic steps: no-op, text statistics, SQL and range filters, percentile thresholds.

``percentile_threshold`` is the fit-step pattern the model plugins use: it asks
DuckDB for a quantile over a score column of the whole corpus, and a later
``range_filter`` reads it as ``${<name>.threshold}``.
"""

from __future__ import annotations

from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curator import FilterResult, FilterStep, FitContext, FitStep, MapStep, Params, hookimpl


class Noop(MapStep):
    """Adds nothing; measures the framework's own cost (bench/)."""

    name = "noop"
    description = "does nothing (for measuring overhead)"

    def process(self, batch: pa.Table) -> dict[str, Any]:
        return {}


class TextStats(MapStep):
    """Characters, words and lines per document."""

    name = "text_stats"
    description = "adds <name>__chars, __words, __lines"

    def process(self, batch: pa.Table) -> dict[str, Any]:
        text = batch.column("text")
        words = pc.list_value_length(pc.utf8_split_whitespace(text))
        lines = pc.add(pc.count_substring(text, "\n"), 1)
        return {"chars": pc.utf8_length(text), "words": words, "lines": lines}


class SqlFilter(FilterStep):
    """Keeps rows for which a DuckDB SQL expression is true, e.g. ``length(text) >= 200``."""

    name = "sql_filter"
    description = "keep rows where a DuckDB SQL boolean expression holds"

    class Params(Params):
        where: str = Field(description="DuckDB boolean expression over the batch's columns")
        reason: str | None = Field(None, description="reject_reason for rows that fail (default: the step name)")

    def setup(self) -> None:
        self._connection = duckdb.connect()

    def filter(self, batch: pa.Table) -> FilterResult:
        if not hasattr(self, "_connection"):
            self.setup()
        con = self._connection
        con.register("batch", batch)
        try:
            result = con.sql(f"SELECT coalesce(({self.params.where}), false) AS keep FROM batch").to_arrow_table()
        finally:
            con.unregister("batch")
        keep = result.column("keep").to_numpy(zero_copy_only=False)
        reason = self.params.reason or self.name
        return FilterResult(keep, [reason] * len(keep))


class RangeFilter(FilterStep):
    """Keeps rows whose numeric column lies in [min, max]; NULLs are rejected."""

    name = "range_filter"
    description = "keep rows with min <= column <= max"

    class Params(Params):
        column: str = Field(description="numeric column, e.g. quality__score")
        min: float | None = Field(None, description="lowest kept value (inclusive)")
        max: float | None = Field(None, description="highest kept value (inclusive)")
        reason: str | None = Field(None, description="reject_reason (default: <column>_out_of_range)")

        @model_validator(mode="after")
        def _bounds(self) -> RangeFilter.Params:
            if self.min is None and self.max is None:
                raise ValueError("set min, max or both")
            return self

    def filter(self, batch: pa.Table) -> FilterResult:
        if self.params.column not in batch.column_names:
            raise KeyError(f"column {self.params.column!r} not in batch (columns: {', '.join(batch.column_names)})")
        values = pc.cast(batch.column(self.params.column), pa.float64()).to_numpy(zero_copy_only=False)
        keep = ~np.isnan(values)
        if self.params.min is not None:
            keep &= values >= self.params.min
        if self.params.max is not None:
            keep &= values <= self.params.max
        reason = self.params.reason or f"{self.params.column}_out_of_range"
        return FilterResult(keep, [reason] * len(keep))


class PercentileThreshold(FitStep):
    """Computes a cutoff over the whole corpus with a DuckDB quantile."""

    name = "percentile_threshold"
    description = "fit: threshold = quantile of a column over the corpus (use as ${name.threshold})"

    class Params(Params):
        column: str = Field(description="numeric column to take the quantile of")
        keep_top_percent: float | None = Field(None, gt=0, le=100, description="threshold keeps this top share")
        quantile: float | None = Field(None, ge=0, le=1, description="or: the quantile itself (0.3 = 30th percentile)")
        ties: Literal["include", "exclude"] = Field(
            "include", description="rows tied at the threshold: 'include' keeps them all (share may exceed the target), 'exclude' drops them (share may fall short)"
        )
        tolerance: float = Field(5.0, ge=0, description="warn when the share at or above the threshold misses the target by more than this many percentage points")

        @model_validator(mode="after")
        def _one(self) -> PercentileThreshold.Params:
            if (self.keep_top_percent is None) == (self.quantile is None):
                raise ValueError("set exactly one of keep_top_percent and quantile")
            return self

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        p = self.params
        q = p.quantile if p.quantile is not None else 1 - p.keep_top_percent / 100
        column = '"' + p.column.replace('"', '""') + '"'
        threshold, rows, distinct = ctx.execute(f"SELECT quantile_cont({column}, {q}), count({column}), count(DISTINCT {column}) FROM corpus").fetchall()[0]
        result: dict[str, Any] = {"threshold": threshold, "quantile": q, "rows": rows, "distinct_values": distinct, "warnings": []}
        if threshold is None or not rows:
            return result
        # Ties are decided here, not by float noise: count what sits exactly at the cut.
        tied, above = ctx.execute(f"SELECT count(*) FILTER (WHERE {column} = ?), count(*) FILTER (WHERE {column} > ?) FROM corpus", [threshold, threshold]).fetchall()[0]
        if tied and p.ties == "exclude":
            higher = ctx.execute(f"SELECT min({column}) FROM corpus WHERE {column} > ?", [threshold]).fetchall()[0][0]
            threshold = higher if higher is not None else threshold
            result["threshold"] = threshold
            kept = above
        else:
            kept = above + tied
        target = 100 * (1 - q)
        share = 100 * kept / rows
        result.update({"tied_rows": tied, "kept_rows": kept, "kept_percent": round(share, 3), "target_percent": round(target, 3)})
        if abs(share - target) > p.tolerance:
            result["warnings"].append(
                f"step {self.name!r}: the threshold {threshold:.6g} on {p.column} keeps {share:.1f}% of rows, not {target:.1f}%: "
                f"{tied:,} rows are tied at it and the column has {distinct:,} distinct values (ties: {p.ties})"
            )
        return result


@hookimpl
def register_steps(register):
    for cls in (Noop, TextStats, SqlFilter, RangeFilter, PercentileThreshold):
        register(cls)
