"""``curator run ... --set STEP.PARAM=VALUE``: change a step parameter without editing the pipeline file.

The value is parsed as YAML (``--set llm.sample_size=50`` is a number,
``--set taxonomy.generate=null`` clears a parameter, ``--set 'x.y=[a, b]'`` a
list); ``STEP.A.B=VALUE`` sets a key inside a mapping parameter
(``--set llm.llm.type=openai``). Overrides apply to the steps as written in the
file (their ``name:``), after it is loaded, and every error names the override.
A relative path given with ``--set`` is relative to the current directory, as
every path on the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from curator.config import Pipeline, validate_pipeline
from curator.errors import ConfigError
from curator.registry import StepRegistry


def parse_override(text: str) -> tuple[str, list[str], Any]:
    """``"step.param.key=value"`` -> (step, [param, key], parsed value)."""
    target, sep, raw = text.partition("=")
    parts = target.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: expected STEP.PARAM=VALUE (e.g. --set taxonomy.path=labels.yaml)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {exc}") from None
    return parts[0], parts[1:], value


def apply_overrides(pipeline: Pipeline, overrides: Sequence[str], registry: StepRegistry) -> None:
    """Apply ``--set`` overrides to ``pipeline``'s step parameters, then validate the pipeline again."""
    for text in overrides:
        step, path, value = parse_override(text)
        spec = next((s for s in pipeline.steps if s.name == step), None)
        if spec is None:
            names = ", ".join(s.name for s in pipeline.steps) or "none"
            raise ConfigError(f"--set {text!r}: the pipeline has no step named {step!r} (steps: {names})")
        cls = registry.get(spec.type)
        fields = cls.Params.model_fields
        if path[0] not in fields:
            raise ConfigError(f"--set {text!r}: step {step!r} ({spec.type}) has no parameter {path[0]!r} (it has: {', '.join(fields)})")
        if len(path) == 1:
            if value is None:
                spec.params.pop(path[0], None)  # null: back to the default
            else:
                spec.params[path[0]] = value
        else:
            current = spec.params.setdefault(path[0], {})
            for key in path[1:-1]:
                if not isinstance(current, dict):
                    break
                current = current.setdefault(key, {})
            if not isinstance(current, dict):
                raise ConfigError(f"--set {text!r}: {'.'.join(path[:-1])!r} of step {step!r} is not a mapping")
            current[path[-1]] = value
        refs = {param for param, _, _ in spec.references()}
        try:
            cls.Params.model_validate({k: v for k, v in spec.params.items() if k not in refs})
        except ValidationError as exc:
            # parameters given as ${step.key} are checked when the reference is resolved (as in config.py)
            errors = [e for e in exc.errors() if not ((e["type"] == "missing" and e["loc"] and e["loc"][0] in refs) or (refs and not e["loc"]))]
            if errors:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}" for e in errors)
                raise ConfigError(f"--set {text!r}: step {step!r} ({spec.type}): {problems}") from None
    validate_pipeline(pipeline, registry)
