"""Step base classes: what a plugin subclasses to add a map, filter or fit step.

Data contract (see docs/plugin-guide.md):

* map and filter steps receive ``pyarrow.Table`` batches with at least ``id``
  and ``text`` and return *new* columns only; the host names them
  ``<step name>__<column>`` so two steps never collide and ``text`` is never
  rewritten;
* a filter returns a keep mask and a reason per rejected row; the host moves
  rejected rows to ``rejected/`` shards with ``reject_step``/``reject_reason``;
* a fit step runs between map passes with a DuckDB connection over the run's
  shards and returns a small JSON-able result (``${step.key}`` in later
  steps' parameters) plus any files it writes into its artifact directory.

Models are loaded in ``setup()``, once per worker, never in ``__init__``:
step objects are shipped to worker processes and Ray actors by pickling.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from curator.errors import ConfigError

if TYPE_CHECKING:
    import duckdb


class Params(BaseModel):
    """Base class for a step's parameters; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class Step:
    """Base class of every step. Subclass :class:`MapStep`, :class:`FilterStep` or :class:`FitStep`."""

    #: The name pipelines use to refer to this step type; an instance's own name
    #: (``name:`` in the pipeline) overrides it, hence no ClassVar.
    name: str = ""
    #: "map", "filter" or "fit"; set by the base classes.
    kind: ClassVar[str] = ""
    #: One line shown by ``curator steps``.
    description: ClassVar[str] = ""
    #: Importable module -> pip requirement that provides it.
    requires: ClassVar[Mapping[str, str]] = {}
    #: The step's parameters; override with a subclass of :class:`Params`.
    Params: ClassVar[type[Params]] = Params
    #: True when setup() loads a model worth keeping warm: on Ray such passes
    #: run on an actor pool (one load per actor) instead of tasks.
    holds_model: ClassVar[bool] = False

    def __init__(self, name: str | None = None, **params: Any) -> None:
        self.name: str = name or type(self).name
        # Typed Any: it is an instance of the subclass's own Params, whose fields a type
        # checker cannot see through the ClassVar above; pydantic validates them at run time.
        self.params: Any = self.Params(**params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, {self.params!r})"

    @classmethod
    def missing_dependencies(cls) -> list[str]:
        """pip requirements this step needs that are not installed."""
        return [pip for module, pip in cls.requires.items() if importlib.util.find_spec(module) is None]

    def check_dependencies(self) -> None:
        missing = self.missing_dependencies()
        if missing:
            raise ConfigError(f"step {self.name!r} ({type(self).name}) needs {', '.join(missing)}: pip install {' '.join(repr(m) for m in missing)}")

    def column(self, suffix: str) -> str:
        """The namespaced output column name ``<step>__<suffix>``."""
        return f"{self.name}__{suffix}"

    def setup(self) -> None:
        """Load models and other per-worker state. Called once per worker before the first batch.

        Keep that state in attributes whose names start with ``_``: they are
        left out when the step is pickled to a worker process or Ray actor
        (models and connections do not pickle), and ``setup()`` makes them there.
        """

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def config_fingerprint(self) -> dict[str, Any]:
        """What identifies this step's behaviour, for fit caching."""
        return {"type": f"{type(self).__module__}.{type(self).__qualname__}", "params": self.params.model_dump(mode="json")}


class MapStep(Step):
    """A step that adds columns to each batch. Implement :meth:`process`."""

    kind = "map"

    def process(self, batch: pa.Table) -> Mapping[str, Any]:
        """Return ``{column suffix: values}``, one value per row of ``batch``."""
        raise NotImplementedError


class FilterResult(NamedTuple):
    """What a filter decides for one batch.

    ``keep``: one bool per row. ``reasons``: one reason per row (ignored for
    kept rows; None falls back to the step name). ``columns``: extra columns to
    add to every row, kept or rejected (e.g. the score the decision used).
    """

    keep: Any
    reasons: Sequence[str | None] | None = None
    columns: Mapping[str, Any] = {}


class FilterStep(Step):
    """A step that keeps or rejects rows, with a reason. Implement :meth:`filter`."""

    kind = "filter"

    def filter(self, batch: pa.Table) -> FilterResult:
        raise NotImplementedError


@dataclass
class Document:
    """One row, for filters written per document (:class:`DocumentFilter`)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class DocumentFilter(FilterStep):
    """A filter written one document at a time: implement :meth:`keep`.

    Return True to keep, False to reject with the step name as reason, or
    ``(False, "reason")``. Set ``with_metadata = True`` to receive the other
    columns in ``doc.metadata`` (costs a conversion per row).
    """

    with_metadata: ClassVar[bool] = False

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def filter(self, batch: pa.Table) -> FilterResult:
        ids = batch.column("id").to_pylist()
        texts = batch.column("text").to_pylist()
        if self.with_metadata:
            other = batch.drop_columns(["id", "text"]).to_pylist()
        else:
            other = [{}] * len(ids)
        keep: list[bool] = []
        reasons: list[str | None] = []
        for doc_id, text, meta in zip(ids, texts, other):
            verdict = self.keep(Document(doc_id, text, meta))
            if isinstance(verdict, tuple):
                keep.append(bool(verdict[0]))
                reasons.append(verdict[1] if len(verdict) > 1 else None)
            else:
                keep.append(bool(verdict))
                reasons.append(None)
        return FilterResult(keep, reasons)


class FitContext:
    """What a fit step sees: the run, a DuckDB connection and its artifact folder.

    The connection has a ``corpus`` view (the rows that reached this step)
    beside the catalog's ``kept``/``rejected``/``stage_<name>`` views, and
    ``results`` holds earlier fit steps' results by step name.
    """

    def __init__(
        self,
        *,
        run_dir: Path,
        artifact_dir: Path,
        connection: duckdb.DuckDBPyConnection,
        results: Mapping[str, Mapping[str, Any]],
        corpus_files: Sequence[Path],
        workers: int = 1,
    ) -> None:
        self.run_dir = run_dir
        self.artifact_dir = artifact_dir
        self.connection = connection
        self.results = results
        self.corpus_files = list(corpus_files)
        self.workers = workers

    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """A lazy relation (``.to_arrow_table()``, ``.df()``, chaining)."""
        return self.connection.sql(query, params=params)

    def execute(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """A cursor with the result (``.fetchone()``, ``.fetchall()``)."""
        return self.connection.execute(query, params or [])

    def table(self, query: str, columns: Sequence[str], what: str) -> pa.Table:
        """A user-written query's result as Arrow; a failing query or a missing column is a ConfigError naming ``what``."""
        try:
            table = self.sql(query).to_arrow_table()
        except Exception as exc:
            raise ConfigError(f"{what} failed: {exc}") from None
        if not set(columns) <= set(table.column_names):
            raise ConfigError(f"{what} must return {', '.join(columns)} columns, got {table.column_names}")
        return table


class FitStep(Step):
    """A step that looks at the corpus before the next map pass. Implement :meth:`fit`.

    ``fit`` returns a JSON-able dict; later steps refer to its values as
    ``${<step name>.<key>}``. The result is cached under the run's artifact
    directory, keyed by the step's parameters and the corpus it saw, so a
    rerun skips it.
    """

    kind = "fit"
    #: Whether the cache key includes a fingerprint of the corpus files.
    depends_on_corpus: ClassVar[bool] = True

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        raise NotImplementedError
