"""Testing kit for plugin authors: a pytest plugin (entry point ``pytest11``).

Installed with curator, so a plugin's tests get these fixtures without a
conftest.py:

* ``curator_plugins``: a fresh plugin manager for one test (installed plugins
  loaded from their entry points); ``curator_plugins.register_steps(MyStep)``
  adds step classes, ``curator_plugins.register(module_or_object, name)`` adds
  a whole plugin; both are gone after the test.
* ``curator_registry``: that manager's step registry.
* ``make_shard``: writes rows to a real Parquet shard (zstd) and returns its path.
* ``curator_run``: :func:`run_pipeline` with the run directory under the
  test's ``tmp_path``.

and :func:`run_pipeline` runs steps over rows through the real runner (real
Parquet shards, the real catalog in DuckDB) and returns ``(kept, rejected)``::

    from curator.testing import run_pipeline

    def test_my_filter(curator_plugins):
        curator_plugins.register_steps(MyFilter)
        kept, rejected = run_pipeline([("my_filter", {"min_words": 3})], [{"id": "a", "text": "one two three"}])
        assert [r["id"] for r in kept] == ["a"]
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator import plugins
from curator.config import Pipeline, PipelineOptions, StepSpec
from curator.hookspecs import hookimpl
from curator.registry import StepRegistry
from curator.steps import Step

__all__ = ["PluginsFixture", "RunResult", "run_pipeline", "write_shard"]

#: what run_pipeline accepts as one step
StepLike = str | type[Step] | tuple[Any, Mapping[str, Any]] | Mapping[str, Any]


class RunResult(tuple):
    """``(kept, rejected)`` as lists of row dicts, plus ``run_dir`` and ``stats``.

    ``rejected`` rows carry ``reject_step`` and ``reject_reason``; every row
    carries the columns the steps added (``<step>__<column>``).
    """

    kept: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    run_dir: Path
    stats: dict[str, Any]

    def __new__(cls, kept: list[dict[str, Any]], rejected: list[dict[str, Any]], run_dir: Path, stats: dict[str, Any]) -> RunResult:
        self = super().__new__(cls, (kept, rejected))
        self.kept, self.rejected, self.run_dir, self.stats = kept, rejected, run_dir, stats
        return self


def write_shard(path: str | Path, rows: Sequence[Mapping[str, Any]] | pa.Table) -> Path:
    """Write ``rows`` (dicts with at least ``id`` and ``text``, or a table) as a Parquet shard."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist([dict(r) for r in rows])
    missing = {"id", "text"} - set(table.column_names)
    if missing:
        raise ValueError(f"rows need {', '.join(sorted(missing))} columns (got {', '.join(table.column_names)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


def _spec(index: int, step: StepLike) -> StepSpec:
    params: dict[str, Any] = {}
    name: str | None = None
    kind: Any = step  # a step type's name or class
    if isinstance(step, tuple):
        kind, params = step[0], dict(step[1])
    elif isinstance(step, Mapping):  # the YAML form: {"step": ..., "name": ..., **params}
        params = dict(step)
        kind = params.pop("step")
        name = params.pop("name", None)
    step_type = kind.name if isinstance(kind, type) and issubclass(kind, Step) else str(kind)
    return StepSpec(type=step_type, name=name or step_type, params=params, line=index + 1)


def _registry_with(steps: Iterable[StepLike], registry: StepRegistry | None) -> StepRegistry:
    """The current registry, plus any step class given directly that it lacks."""
    base = registry if registry is not None else plugins.get_registry()
    classes = []
    for step in steps:
        first = step[0] if isinstance(step, tuple) else step.get("step") if isinstance(step, Mapping) else step
        # a class whose name the registry holds for another class is a duplicate: register() says so
        if isinstance(first, type) and issubclass(first, Step) and (first.name not in base or base.get(first.name) is not first):
            classes.append(first)
    if not classes:
        return base
    extended = base.copy()
    for cls in classes:
        extended.register(cls, "curator.testing")
    return extended


def run_pipeline(
    steps: Sequence[StepLike],
    rows: Sequence[Mapping[str, Any]] | pa.Table,
    *,
    run_dir: str | Path | None = None,
    registry: StepRegistry | None = None,
    batch_size: int = 2000,
    workers: int = 1,
    executor: str = "local",
    fail_fast: bool = True,
) -> RunResult:
    """Run ``steps`` over ``rows`` for real and return ``(kept, rejected)``.

    Each step is a registered step name, a step class, ``(name or class,
    {params})`` or the YAML form ``{"step": name, "name": ..., **params}``;
    ``${fit_step.key}`` references work as in a pipeline file. Rows go
    through a real Parquet shard, the real runner and executor, and come back
    from the run's DuckDB catalog (views ``kept`` and ``rejected``), ordered
    by id. ``fail_fast`` (the default here, unlike ``curator run``) makes a
    step that raises fail the test instead of quarantining rows.
    """
    from curator import catalog
    from curator.runner import run_pipeline as run

    run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="curator-test-run-"))
    shard = write_shard(run_dir.parent / f"{run_dir.name}-input" / "rows.parquet", rows)
    specs = [_spec(i, s) for i, s in enumerate(steps)]
    pipeline = Pipeline(options=PipelineOptions(name="curator.testing", batch_size=batch_size), steps=specs, source="<curator.testing>")
    stats = run(
        pipeline,
        run_dir,
        registry=_registry_with(steps, registry),
        inputs=[str(shard)],
        executor=executor,
        workers=workers,
        fail_fast=fail_fast,
        progress=False,
    )
    connection = catalog.open_readonly(run_dir)
    try:
        kept = connection.sql("SELECT * FROM kept ORDER BY id").to_arrow_table().to_pylist()
        rejected = connection.sql("SELECT * FROM rejected ORDER BY id").to_arrow_table().to_pylist()
    finally:
        connection.close()
    return RunResult(kept, rejected, run_dir, stats)


class PluginsFixture:
    """A fresh plugin manager for one test; what ``curator_plugins`` yields."""

    def __init__(self) -> None:
        self._names: list[str] = []

    @property
    def pm(self) -> Any:
        return plugins.get_plugin_manager()

    @property
    def registry(self) -> StepRegistry:
        return plugins.get_registry()

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin (a module or object with ``@hookimpl`` functions) for this test."""
        name = name or getattr(plugin, "__name__", None) or f"test-plugin-{len(self._names)}"
        plugins.register_plugin(plugin, name)
        self._names.append(name)
        return name

    def register_steps(self, *classes: type[Step], name: str | None = None) -> str:
        """Register step classes as if a plugin's ``register_steps`` hook did."""

        class _Steps:
            @hookimpl
            def register_steps(self, register: Any) -> None:
                for cls in classes:
                    register(cls)

        return self.register(_Steps(), name or f"test-steps-{len(self._names)}")

    def close(self) -> None:
        for name in self._names:
            try:
                plugins.unregister_plugin(name)
            except ValueError:
                pass
        plugins.reset()


@pytest.fixture
def curator_plugins() -> Iterator[PluginsFixture]:
    """A freshly loaded plugin manager; register steps or plugins for this test only."""
    plugins.reset()
    fixture = PluginsFixture()
    try:
        yield fixture
    finally:
        fixture.close()


@pytest.fixture
def curator_registry(curator_plugins: PluginsFixture) -> StepRegistry:
    """The step registry of a fresh plugin manager."""
    return curator_plugins.registry


@pytest.fixture
def make_shard(tmp_path: Path) -> Any:
    """``make_shard(rows, name="shard.parquet") -> Path``: a real Parquet shard under ``tmp_path``."""
    made: list[Path] = []

    def _make(rows: Sequence[Mapping[str, Any]] | pa.Table, name: str | None = None) -> Path:
        path = write_shard(tmp_path / "shards" / (name or f"shard-{len(made)}.parquet"), rows)
        made.append(path)
        return path

    return _make


@pytest.fixture
def curator_run(tmp_path: Path) -> Any:
    """:func:`run_pipeline` with its run directory under ``tmp_path`` (``run-0``, ``run-1``, ...)."""
    count = [0]

    def _run(steps: Sequence[StepLike], rows: Sequence[Mapping[str, Any]] | pa.Table, **options: Any) -> RunResult:
        options.setdefault("run_dir", tmp_path / f"run-{count[0]}")
        count[0] += 1
        return run_pipeline(steps, rows, **options)

    return _run
