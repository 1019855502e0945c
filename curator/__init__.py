"""curator: curate LLM-pretraining corpora with plugins over Parquet shards and DuckDB."""

from __future__ import annotations

from curator.hookspecs import hookimpl
from curator.steps import (
    Document,
    DocumentFilter,
    FilterResult,
    FilterStep,
    FitContext,
    FitStep,
    MapStep,
    Params,
    Step,
)

__all__ = [
    "Document",
    "DocumentFilter",
    "FilterResult",
    "FilterStep",
    "FitContext",
    "FitStep",
    "MapStep",
    "Params",
    "Step",
    "hookimpl",
]
__version__ = "0.1.0"
