"""`curator new-plugin`: the scaffold installs into a fresh virtualenv, passes its own tests, and runs in a pipeline."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import duckdb
import pytest
import tomllib
from conftest import DOLMA, REPO, curator_cli

from curator.scaffold import KINDS, ScaffoldError, create, names_for


def test_bad_name_and_taken_step_name_and_existing_dir_are_one_line_errors(tmp_path):
    bad = curator_cli("new-plugin", "My Plugin", check=False, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "bad plugin name 'My Plugin'" in bad.stderr and "e.g. word-count" in bad.stderr
    taken = curator_cli("new-plugin", "noop", check=False, cwd=tmp_path)
    assert taken.returncode == 1 and "step named 'noop' already exists (plugin 'builtin')" in taken.stderr
    (tmp_path / "curator-dup").mkdir()
    (tmp_path / "curator-dup" / "keep.txt").write_text("mine")
    exists = curator_cli("new-plugin", "dup", check=False, cwd=tmp_path)
    assert exists.returncode == 1 and exists.stderr.count("\n") == 1 and "curator-dup already exists" in exists.stderr
    assert (tmp_path / "curator-dup" / "keep.txt").read_text() == "mine"  # nothing overwritten
    assert not (tmp_path / "curator-noop").exists()
    made = curator_cli("new-plugin", "dup", "--kind", "map", "--dir", "elsewhere/pkg", cwd=tmp_path)
    assert "created elsewhere/pkg/ with the map step 'dup'" in made.stdout
    assert 'dup = "curator_dup"' in (tmp_path / "elsewhere" / "pkg" / "pyproject.toml").read_text()
    assert "class DupStep(MapStep):" in (tmp_path / "elsewhere" / "pkg" / "curator_dup.py").read_text()


def test_names_are_normalised():
    names = names_for("curator-word-count", "map")
    assert (names.step, names.module, names.dist, names.cls) == ("word_count", "curator_word_count", "curator-word-count", "WordCountStep")
    with pytest.raises(ScaffoldError, match="unknown kind"):
        create("x", "reduce")
    for bad in ("1abc", "a--b", "-a", "ABC", "a b", "curator"):
        with pytest.raises(ScaffoldError, match="bad plugin name"):
            names_for(bad, "filter")


def test_templates_are_package_data():
    """Every template file is matched by pyproject's package-data, so an installed curator has them."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["curator.scaffold"]
    assert "curator.scaffold" in config["tool"]["setuptools"]["packages"]
    root = REPO / "curator" / "scaffold"
    templates = [p.relative_to(root).as_posix() for p in (root / "templates").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(templates) == 2 + 3 * len(KINDS)
    assert all(any(fnmatch.fnmatch(t, pat) for pat in patterns) for t in templates)
    assert config["project"]["entry-points"]["pytest11"]["curator"] == "curator.testing"


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory):
    """One fresh virtualenv with a scaffold of every kind installed (pip install -e, as a user would).

    ``venv --system-site-packages`` would expose the interpreter's own
    site-packages, not this (already virtual) environment's, so curator and
    its dependencies come in through a .pth file that adds our site-packages
    instead: same effect, nothing reinstalled.
    """
    root = tmp_path_factory.mktemp("scaffolds")
    for kind in KINDS:
        out = curator_cli("new-plugin", f"my-{kind}", "--kind", kind, cwd=root).stdout
        assert f"created curator-my-{kind}" in out
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_curator_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    editable = [arg for kind in KINDS for arg in ("-e", str(root / f"curator-my-{kind}"))]
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *editable], check=True, capture_output=True, timeout=300)
    return root, python


def _in_venv(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CURATOR_LOAD_PLUGINS", "CURATOR_DISABLE_PLUGINS")}
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_scaffolds_pass_their_own_tests_in_a_fresh_venv(plugin_venv):
    root, python = plugin_venv
    dirs = [str(root / f"curator-my-{kind}" / "tests") for kind in KINDS]
    proc = _in_venv(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::UserWarning", *dirs, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 passed" in proc.stdout


@pytest.mark.slow
def test_scaffolds_are_listed_and_run_in_pipelines(plugin_venv):
    root, python = plugin_venv
    listed = {r["name"]: r for r in json.loads(_in_venv(python, "-m", "curator", "plugins", "--json", cwd=root).stdout)}
    for kind in KINDS:
        assert listed[f"my_{kind}"]["distribution"] == f"curator-my-{kind}"
        assert listed[f"my_{kind}"]["hooks"] == ["register_steps"]
    added = {"filter": "my_filter__words", "map": "my_map__per_1k_words", "fit": None}
    for kind in KINDS:
        run = root / f"run-{kind}"
        proc = _in_venv(python, "-m", "curator", "run", str(root / f"curator-my-{kind}" / "pipeline.yaml"), "-i", str(DOLMA), "-o", str(run), "-q", cwd=root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "kept + rejected = 697 = input 697: ok" in proc.stdout
        con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
        kept, rejected = (con.execute(f"SELECT count(*) FROM {view}").fetchone()[0] for view in ("kept", "rejected"))
        reasons = {r for (r,) in con.execute("SELECT DISTINCT reject_reason FROM rejected").fetchall()}
        assert kept > 0 and rejected > 0 and not any(r.startswith("error") for r in reasons), reasons
        if added[kind]:
            assert con.execute(f"SELECT count({added[kind]}) FROM documents").fetchone()[0] == 697
    fit = json.loads((root / "run-fit" / "artifacts" / "my_fit" / "cutoff.json").read_text())
    assert fit["docs"] == 697 and fit["min_chars"] > 0
