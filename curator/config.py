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

import re
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
    format: Literal["auto", "jsonl", "parquet"] = "auto"
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
        errors = [f"{source}: field {'.'.join(str(p) for p in e['loc'])!r}: {'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(errors)) from None
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
    if registry is not None:
        validate_pipeline(pipeline, registry)
    return pipeline


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
                errors.append(
                    f"{source}:{spec.param_lines.get(param, spec.line)}: step {spec.name!r}: field {param!r}: "
                    f"${{{target}...}} must name a fit step that comes earlier in the pipeline"
                )
        ref_params = {param for param, _, _ in refs}
        try:
            cls.Params.model_validate({k: v for k, v in spec.params.items() if k not in ref_params})
        except ValidationError as exc:
            errors.extend(
                line for err, line in zip(exc.errors(), _format_errors(exc, spec, source))
                # fields given as ${...} are checked when the reference is resolved
                if not ((err["type"] == "missing" and err["loc"] and err["loc"][0] in ref_params) or (ref_params and not err["loc"]))
            )
        if cls.kind == "fit":
            fit_steps.add(spec.name)
    if errors:
        raise ConfigError("\n".join(errors))
