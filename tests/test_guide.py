"""docs/plugin-guide.md cannot rot: every ```python block imports, its pipeline runs, its tests pass."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import REPO, pipeline_file

from curator import DocumentFilter, plugins
from curator.catalog import connect
from curator.config import load_pipeline
from curator.runner import run_pipeline
from curator.scaffold import create

GUIDE = REPO / "docs" / "plugin-guide.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def _blocks() -> list[tuple[str, str, int]]:
    text = GUIDE.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def _filename(code: str) -> str:
    first = code.splitlines()[0]
    assert re.fullmatch(r"# [\w/]+\.py", first), f"a python block must start with '# <file>.py', got {first!r}"
    return first[2:]


def _examples() -> list[tuple[str, str, str | None, int]]:
    """(file name, python code, the yaml pipeline after it or None, line) for every plugin module in the guide."""
    out: list[tuple[str, str, str | None, int]] = []
    for lang, code, line in _blocks():
        if lang == "python" and not _filename(code).startswith("tests/"):
            out.append((_filename(code), code, None, line))
        elif lang == "yaml" and "steps:" in code and out and out[-1][2] is None:
            out[-1] = (*out[-1][:2], code, out[-1][3])
    return out


EXAMPLES = _examples()


def test_the_guide_has_every_kind_of_step_with_a_pipeline():
    code = "\n".join(c for _, c, _, _ in EXAMPLES)
    for base in ("DocumentFilter", "FilterStep", "MapStep", "FitStep"):
        assert re.search(rf"^class \w+\({base}\):", code, re.M), f"the guide has no {base} example"
    assert "columns={" in code and "def fit(self, ctx: FitContext)" in code
    assert "${boiler.path}" in "".join(y for _, _, y, _ in EXAMPLES if y)
    assert all(yaml for _, _, yaml, _ in EXAMPLES), "each plugin module in the guide is followed by a pipeline using it"
    assert len(EXAMPLES) == 5
    langs = {lang for lang, _, _ in _blocks()}
    assert langs <= {"", "python", "yaml", "toml"}, langs


@pytest.mark.parametrize("filename, code, pipeline, line", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_guide_example_imports_and_its_pipeline_runs(filename, code, pipeline, line, tmp_path, tiny_shard, monkeypatch, register_plugin):
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / filename).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path / "mod"))
    module_name = filename[:-3]
    try:
        module = importlib.import_module(module_name)  # every import the block needs is in the block
        register_plugin(module, module_name)
        pipe = load_pipeline(pipeline_file(tmp_path, pipeline), plugins.get_registry())
        stats = run_pipeline(pipe, tmp_path / "run", inputs=[str(tiny_shard)], progress=False, fail_fast=True)
    finally:
        sys.modules.pop(module_name, None)
    assert stats["input"] == 60 and stats["kept"] + stats["rejected"] == 60 and stats["balanced"], stats
    con = connect(tmp_path / "run")
    columns = {c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE documents)").fetchall()}
    reasons = {r for (r,) in con.execute("SELECT DISTINCT reject_reason FROM rejected").fetchall()}
    assert not any(r.startswith("error") for r in reasons), reasons
    if filename != "curator_banned.py":  # banned words are rare in 60 documents; the others' thresholds do something
        assert 0 < stats["kept"] < 60, stats
    for spec in pipe.steps:  # every columnar step of the example added its columns to every row
        cls = plugins.get_registry().get(spec.type)
        if cls.__module__ == module_name and cls.kind != "fit" and not issubclass(cls, DocumentFilter):
            added = [c for c in columns if c.startswith(f"{spec.name}__")]
            assert added, (spec.name, columns)
            assert con.execute(f"SELECT count(*) FROM documents WHERE {added[0]} IS NULL").fetchone()[0] == 0


def test_the_guide_test_block_passes_with_curator_testing(tmp_path):
    blocks = [(lang, code) for lang, code, _ in _blocks() if lang == "python"]
    for _, code in blocks:
        path = tmp_path / _filename(code)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    tests = [_filename(c) for _, c in blocks if _filename(c).startswith("tests/")]
    assert tests == ["tests/test_banned.py"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout


def test_the_guide_pyproject_is_what_the_scaffold_writes(tmp_path):
    shown = tomllib.loads(next(code for lang, code, _ in _blocks() if lang == "toml"))
    written = tomllib.loads((create("word-count", "filter", tmp_path / "pkg") / "pyproject.toml").read_text())
    assert shown["project"]["name"] == written["project"]["name"]
    assert shown["project"]["dependencies"] == written["project"]["dependencies"]
    assert shown["project"]["entry-points"] == written["project"]["entry-points"]
    assert shown["tool"]["setuptools"] == written["tool"]["setuptools"]
    assert Path(tmp_path / "pkg" / "curator_word_count.py").is_file()
