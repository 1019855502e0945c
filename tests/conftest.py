from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator import plugins

REPO = Path(__file__).resolve().parents[1]
# LLM answers are cached per test session, not in the user's ~/.cache
os.environ["CURATOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="curator-test-cache-")
SHARED_DATA = Path(os.environ.get("CURATOR_SHARED_DATA", REPO.parent / "shared" / "data"))
DOLMA = SHARED_DATA / "web" / "dolma_cc_sample.jsonl.gz"


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(autouse=True)
def fresh_plugins():
    """Every test starts with a freshly loaded plugin manager."""
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def registry():
    return plugins.get_registry()


@pytest.fixture
def register_plugin():
    """Register plugin objects for one test; they are removed afterwards."""
    names = []

    def _register(plugin, name):
        plugins.register_plugin(plugin, name)
        names.append(name)

    yield _register
    for name in names:
        try:
            plugins.unregister_plugin(name)
        except ValueError:
            pass


@pytest.fixture(scope="session")
def dolma_rows():
    return [{"id": r["id"], "text": r["text"], "url": r.get("metadata", {}).get("url")} for r in read_jsonl(DOLMA)]


@pytest.fixture
def tiny_shard(tmp_path, dolma_rows):
    """A real Parquet shard of 60 real web documents."""
    path = tmp_path / "in" / "tiny.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(dolma_rows[:60]), path, compression="zstd")
    return path


@pytest.fixture
def sharded_input(tmp_path, dolma_rows):
    """The dolma sample split into 8 Parquet shards (real text, real files)."""
    folder = tmp_path / "shards"
    folder.mkdir()
    table = pa.Table.from_pylist(dolma_rows)
    per = -(-table.num_rows // 8)
    for i in range(8):
        pq.write_table(table.slice(i * per, per), folder / f"shard-{i}.parquet")
    return folder


def curator_cli(*args: str, env: dict | None = None, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `curator` console script in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    exe = Path(sys.executable).parent / "curator"
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"curator {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def pipeline_file(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory):
    """docs/example-plugin installed for real with pip (into a folder put on the path)."""
    site = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(REPO / "docs" / "example-plugin")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


@pytest.fixture
def example_plugin(example_plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(example_plugin_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(example_plugin_site), os.environ.get("PYTHONPATH")])))
    plugins.reset()
    return example_plugin_site
