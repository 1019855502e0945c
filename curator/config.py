"""Pipeline YAML -> validated objects. Errors name the file, line, step and field.

A pipeline file::

    name: demo
    input:                      # optional; --input overrides `path`
      path: data/*.jsonl.gz
      text_column: content      # when the source names it otherwise
    on_bad_input: quarantine    # or: fail
    steps:
      - step: gopher_quality    # a registered step name (`curator steps`)
        name: gopher            # optional instance name, used in column names
        min_doc_words: 50       # every other key is a parameter of the step
      - step: percentile_threshold
        column: quality__score
        keep_top_percent: 10
      - step: range_filter
        column: quality__score
        min: ${percentile_threshold.threshold}   # a fit step's result
"""

from __future__ import annotations

import glob
import os
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curator.errors import ConfigError
from curator.registry import StepRegistry
from curator.steps import Step

REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z0-9_.]+)\}")
STEP_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | list[str] | None = None
    format: Literal["auto", "jsonl", "parquet", "warc", "wet"] = "auto"
    id_column: str = "id"
    text_column: str = "text"

    @property
    def paths(self) -> list[str]:
        if self.path is None:
            return []
        return [self.path] if isinstance(self.path, str) else list(self.path)


class PipelineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "pipeline"
    description: str = ""
    input: InputSpec = InputSpec()
    batch_size: int = Field(2000, gt=0, description="rows per batch (memory per worker grows with it)")
    on_bad_input: Literal["quarantine", "fail"] = "quarantine"
    #: seconds one step may spend on one batch before its worker is stopped
    #: and the shard quarantined (or the run stopped, with on_bad_input: fail)
    step_timeout: float | None = Field(None, gt=0)
    # -- storage layout (see docs/storage.md); none of these changes which rows a run keeps
    #: what a shard's completion marker records of its input: size + mtime, or a content hash
    fingerprint: Literal["stat", "hash"] = "stat"
    #: rows per Parquet row group in output shards (DuckDB reads row groups in parallel)
    row_group_rows: int = Field(100_000, gt=0)
    #: rows per output shard: a bigger unit of work writes several shards
    max_shard_rows: int = Field(1_000_000, gt=0)
    #: split input files into work units of about this many rows (Parquet: whole row groups) ...
    unit_rows: int | None = Field(None, gt=0)
    #: ... or, when unit_rows is not set, of about this many MB of the file as stored
    unit_mb: float = Field(256, gt=0)
    steps: list[Any] = []


@dataclass
class StepSpec:
    """One entry of ``steps:`` before it is built into a :class:`Step`."""

    type: str
    name: str
    params: dict[str, Any]
    line: int
    param_lines: dict[str, int] = field(default_factory=dict)

    def references(self) -> list[tuple[str, str, str]]:
        """(param, fit step, key) for every ``${step.key}`` in the parameters."""
        refs = []
        for param, value in self.params.items():
            for match in REF.finditer(yaml.safe_dump(value)) if not isinstance(value, str) else REF.finditer(value):
                refs.append((param, match.group(1), match.group(2)))
        return refs

    def build(self, registry: StepRegistry, results: dict[str, dict[str, Any]] | None = None, source: str = "<pipeline>") -> Step:
        """Instantiate the step, substituting fit results into ``${...}`` references."""
        cls = registry.get(self.type)
        params = {k: resolve_references(v, results or {}, f"{source}:{self.param_lines.get(k, self.line)}") for k, v in self.params.items()}
        try:
            return cls(name=self.name, **params)
        except ValidationError as exc:
            raise ConfigError("\n".join(_format_errors(exc, self, source))) from None


@dataclass
class Pipeline:
    options: PipelineOptions
    steps: list[StepSpec]
    source: str = "<pipeline>"
    #: things a user should fix that do not stop the run (printed by `run` and `validate`)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.options.name


def resolve_references(value: Any, results: dict[str, dict[str, Any]], where: str) -> Any:
    if isinstance(value, list):
        return [resolve_references(v, results, where) for v in value]
    if isinstance(value, dict):
        return {k: resolve_references(v, results, where) for k, v in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(match: re.Match[str]) -> Any:
        step, key = match.group(1), match.group(2)
        if step not in results:
            raise ConfigError(f"{where}: ${{{step}.{key}}} refers to fit step {step!r}, which has not run")
        current: Any = results[step]
        for part in key.split("."):
            if not isinstance(current, dict) or part not in current:
                raise ConfigError(f"{where}: fit step {step!r} has no result {key!r} (it has: {', '.join(results[step])})")
            current = current[part]
        return current

    whole = REF.fullmatch(value)
    if whole:  # keep the result's type (a float stays a float)
        return lookup(whole)
    return REF.sub(lambda m: str(lookup(m)), value)


def _format_errors(exc: ValidationError, spec: StepSpec, source: str) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        param = loc[0] if loc else ""
        line = spec.param_lines.get(param, spec.line)
        what = f"field {'.'.join(loc)!r}" if loc else "parameters"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter"
        lines.append(f"{source}:{line}: step {spec.name!r} ({spec.type}): {what}: {msg}")
    return lines


def _step_nodes(root: yaml.Node | None) -> list[yaml.Node]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "steps" and isinstance(value, yaml.SequenceNode):
            return list(value.value)
    return []


def parse_pipeline(text: str, source: str = "<pipeline>") -> tuple[PipelineOptions, list[StepSpec]]:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a pipeline is a mapping with a `steps:` list, got {type(data).__name__}")
    try:
        options = PipelineOptions.model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: field {'.'.join(str(p) for p in e['loc'])!r}: {'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(problems)) from None
    nodes = _step_nodes(root)
    specs: list[StepSpec] = []
    errors: list[str] = []
    for index, raw in enumerate(options.steps):
        node = nodes[index] if index < len(nodes) else None
        line = node.start_mark.line + 1 if node is not None else 0
        if not isinstance(raw, dict) or "step" not in raw:
            errors.append(f"{source}:{line}: steps[{index}]: each step needs a `step:` key naming a step type")
            continue
        param_lines = {}
        if isinstance(node, yaml.MappingNode):
            param_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
        raw = dict(raw)
        step_type = str(raw.pop("step"))
        name = str(raw.pop("name", step_type))
        params = raw.pop("params", None) or {}
        params.update(raw)
        specs.append(StepSpec(type=step_type, name=name, params=params, line=line, param_lines=param_lines))
    if errors:
        raise ConfigError("\n".join(errors))
    return options, specs


def load_pipeline(path: str | Path, registry: StepRegistry | None = None) -> Pipeline:
    """Read and validate a pipeline file. Raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline: {exc.strerror}") from None
    options, specs = parse_pipeline(text, str(path))
    pipeline = Pipeline(options=options, steps=specs, source=str(path))
    resolve_paths(pipeline, registry)
    if registry is not None:
        validate_pipeline(pipeline, registry)
    return pipeline


# Paths in a pipeline file are relative to the file, so `curator run /abs/path/pipeline.yaml`
# works from any folder. A step parameter is a path when its Params field says so:
#     model: str = Field(description="...", json_schema_extra={"path": True})
# (a str, a list of str, or a nested model holding such fields). `--input` and `--output`
# on the command line stay relative to the current directory, as in every shell command.


def is_path_field(info: Any) -> bool:
    """A Params field marked ``json_schema_extra={"path": True}`` (a file or glob the step reads)."""
    extra = getattr(info, "json_schema_extra", None)
    return isinstance(extra, dict) and bool(extra.get("path"))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation such as ``Signals | None`` or ``list[FastTextSignal]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _matches(pattern: str) -> bool:
    return os.path.isdir(pattern) or bool(glob.glob(pattern, recursive=True))


def resolve_path(value: str, base: Path, where: str, warnings: list[str]) -> str:
    """``value`` relative to ``base`` unless it is absolute, a URL or a ``${step.key}`` (a run artifact)."""
    if not isinstance(value, str) or not value or "${" in value or "://" in value:
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    resolved = os.path.normpath(base / expanded)
    if not _matches(resolved) and _matches(expanded):
        # pipelines written before paths followed the file: still run, and say how to fix it
        warnings.append(f"{where}: {value!r} is read relative to the current directory; write it relative to the pipeline file ({os.path.relpath(os.path.abspath(expanded), base)!r})")
        return os.path.abspath(expanded)
    return resolved


def _each_path(value: Any, fn: Callable[[str, str], str], where: str) -> Any:
    if isinstance(value, list):
        return [fn(v, where) if isinstance(v, str) else v for v in value]
    return fn(value, where) if isinstance(value, str) else value


def map_path_params(model: type[BaseModel], params: dict[str, Any], fn: Callable[[str, str], str], where: str) -> dict[str, Any]:
    """``params`` with ``fn(value, where)`` applied to every path parameter, nested models included."""
    out = dict(params)
    for key, value in params.items():
        info = model.model_fields.get(key)
        if info is None:
            continue  # an unknown parameter: validation names it
        here = f"{where}: field {key!r}"
        if is_path_field(info):
            out[key] = _each_path(value, fn, here)
            continue
        nested = _models_in(info.annotation)
        if nested and isinstance(value, dict):
            out[key] = map_path_params(nested[0], value, fn, here)
        elif nested and isinstance(value, list):
            out[key] = [map_path_params(nested[0], v, fn, here) if isinstance(v, dict) else v for v in value]
    return out


def _params_model(registry: StepRegistry, step_type: str) -> type[BaseModel] | None:
    model = getattr(registry.get(step_type), "Params", None) if step_type in registry else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def resolve_paths(pipeline: Pipeline, registry: StepRegistry | None) -> None:
    """Make ``input.path`` and path parameters absolute, relative to the pipeline file's folder."""
    if pipeline.source.startswith("<"):
        return  # parsed from a string: nothing to be relative to
    base = Path(pipeline.source).resolve().parent

    def resolve(value: str, where: str) -> str:
        return resolve_path(value, base, where, pipeline.warnings)

    spec = pipeline.options.input
    if spec.path is not None:
        spec.path = _each_path(spec.path, resolve, f"{pipeline.source}: field 'input.path'")
    if registry is None:
        return
    for step in pipeline.steps:
        model = _params_model(registry, step.type)
        if model is not None:
            step.params = map_path_params(model, step.params, resolve, f"{pipeline.source}:{step.line}: step {step.name!r}")


def missing_paths(pipeline: Pipeline, registry: StepRegistry) -> list[str]:
    """One line per path parameter (not a ``${...}`` artifact) that names no existing file."""
    problems: list[str] = []

    def check(value: str, where: str) -> str:
        if value and "${" not in value and "://" not in value and not _matches(os.path.expanduser(value)):
            problems.append(f"{where}: {value!r} does not exist")
        return value

    for step in pipeline.steps:
        model = _params_model(registry, step.type)
        if model is not None:
            map_path_params(model, step.params, check, f"{pipeline.source}:{step.line}: step {step.name!r}")
    return problems


def expand_steps(specs: list[StepSpec], registry: StepRegistry) -> list[StepSpec]:
    """Replace each composite step by its parts.

    A step class may define ``expand(spec) -> list[StepSpec] | None`` (a
    classmethod): a corpus-level step such as ``exact_dedup`` is one entry in
    YAML but runs as a map part, a fit part and a filter part (see
    docs/plugin-guide.md). ``None`` means "run as written", which also makes
    expanding an expanded list a no-op.
    """
    out: list[StepSpec] = []
    for spec in specs:
        expand = getattr(registry.get(spec.type), "expand", None) if spec.type in registry else None
        parts = expand(spec) if expand is not None else None
        out.extend(parts if parts is not None else [spec])
    return out


def validate_pipeline(pipeline: Pipeline, registry: StepRegistry) -> None:
    """Check every step as written, then expand composite steps and check their parts.

    Expands ``pipeline.steps`` in place, so planning and running see the parts.
    """
    _check_steps(pipeline, registry)
    expanded = expand_steps(pipeline.steps, registry)
    if expanded != pipeline.steps:
        pipeline.steps = expanded
        _check_steps(pipeline, registry)


def _check_steps(pipeline: Pipeline, registry: StepRegistry) -> None:
    source = pipeline.source
    errors: list[str] = []
    batch_size = pipeline.options.batch_size
    # checked here as well as by the model: the CLI's --batch-size is assigned after parsing
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        errors.append(f"{source}: field 'batch_size': must be a positive number of rows, got {batch_size!r}")
    seen: dict[str, int] = {}
    fit_steps: set[str] = set()
    for spec in pipeline.steps:
        where = f"{source}:{spec.line}"
        if not STEP_NAME.match(spec.name):
            errors.append(f"{where}: step name {spec.name!r} must be lowercase letters, digits and _ (it names columns and SQL views)")
        if spec.name in seen:
            errors.append(f"{where}: step name {spec.name!r} is used twice (first on line {seen[spec.name]}); give one a `name:`")
        seen[spec.name] = spec.line
        if spec.type not in registry:
            errors.append(f"{where}: unknown step {spec.type!r}{registry.suggest(spec.type)}")
            continue
        cls = registry.get(spec.type)
        missing = cls.missing_dependencies()
        if missing:
            errors.append(f"{where}: step {spec.name!r} ({spec.type}) needs {', '.join(missing)}: pip install {' '.join(missing)}")
        refs = spec.references()
        for param, target, _key in refs:
            if target not in fit_steps:
                errors.append(f"{source}:{spec.param_lines.get(param, spec.line)}: step {spec.name!r}: field {param!r}: ${{{target}...}} must name a fit step that comes earlier in the pipeline")
        ref_params = {param for param, _, _ in refs}
        try:
            cls.Params.model_validate({k: v for k, v in spec.params.items() if k not in ref_params})
        except ValidationError as exc:
            errors.extend(
                line
                for err, line in zip(exc.errors(), _format_errors(exc, spec, source))
                # fields given as ${...} are checked when the reference is resolved
                if not ((err["type"] == "missing" and err["loc"] and err["loc"][0] in ref_params) or (ref_params and not err["loc"]))
            )
        if cls.kind == "fit":
            fit_steps.add(spec.name)
    if errors:
        raise ConfigError("\n".join(errors))
