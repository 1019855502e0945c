"""``curator new-plugin``: a pip-installable plugin package from the templates beside this file.

The templates (``templates/<kind>/*.tmpl`` and ``templates/common/*.tmpl``)
are plain files with ``{{placeholders}}``; they end in ``.tmpl`` so that
pytest, ruff and mypy leave them alone inside curator's own tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from curator.errors import CuratorError

KINDS = ("filter", "map", "fit")
NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")

_ABOUT = {
    "filter": "a columnar filter that rejects short documents and adds a word-count column.",
    "map": "a map step that counts given words per document and adds two columns.",
    "fit": "a fit step that finds a length cutoff over the whole corpus through DuckDB, used by a later filter as `${step.min_chars}`.",
}
_SUFFIX = {"filter": "Filter", "map": "Step", "fit": "Fit"}


class ScaffoldError(CuratorError):
    """A bad plugin name or target directory."""


@dataclass(frozen=True)
class Names:
    step: str  # step name and entry point name: word_count
    module: str  # curator_word_count
    dist: str  # curator-word-count
    cls: str  # WordCountFilter


def names_for(name: str, kind: str) -> Names:
    if not NAME.match(name):
        raise ScaffoldError(f"bad plugin name {name!r}: use lowercase letters and digits, words joined by - or _, starting with a letter (e.g. word-count)")
    step = re.sub(r"^curator[-_]", "", name).replace("-", "_")
    if not step or step == "curator":
        raise ScaffoldError(f"bad plugin name {name!r}: name what the plugin does (e.g. word-count); curator- is added for you")
    camel = "".join(part.capitalize() for part in step.split("_"))
    return Names(step=step, module=f"curator_{step}", dist=f"curator-{step.replace('_', '-')}", cls=camel + _SUFFIX[kind])


def _render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def create(name: str, kind: str = "filter", directory: str | Path | None = None) -> Path:
    """Write the package for plugin ``name`` into ``directory`` (default ``./curator-<name>``); returns it."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    names = names_for(name, kind)
    target = Path(directory) if directory is not None else Path(names.dist)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target} already exists and is not empty: pick another --dir, or remove it first")
    values = {
        "step": names.step,
        "entry": names.step,
        "module": names.module,
        "dist": names.dist,
        "cls": names.cls,
        "kind": kind,
        "about": _ABOUT[kind],
    }
    templates = files("curator.scaffold") / "templates"
    layout = {
        "pyproject.toml": templates / "common" / "pyproject.toml.tmpl",
        "README.md": templates / "common" / "README.md.tmpl",
        f"{names.module}.py": templates / kind / "module.py.tmpl",
        f"tests/test_{names.step}.py": templates / kind / "test.py.tmpl",
        "pipeline.yaml": templates / kind / "pipeline.yaml.tmpl",
    }
    for relative, template in layout.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
    return target
