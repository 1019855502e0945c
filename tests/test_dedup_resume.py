"""A `curator run` with exact_dedup + minhash_dedup killed with SIGKILL -- mid-pass, then inside the
fuzzy fit -- and started again ends with exactly the rows and groups of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, curator_cli, pipeline_file

pytest.importorskip("rensa")
pytest.importorskip("xxhash")

PIPELINE = """
steps:
  - step: exact_dedup
    name: exact
  - step: minhash_dedup
    name: fuzzy
    bands: 14
    rows: 8
    verify: true
    threshold: 0.7
"""
SHARDS = 8


@pytest.fixture
def duplicated_shards(tmp_path, dolma_rows):
    """300 dolma documents three times over (exact copies and 2 %-edited copies), shuffled into 8 shards."""
    rng = random.Random(5)
    rows = []
    for r in dolma_rows[:300]:
        rows.append({"id": r["id"], "text": r["text"]})
        rows.append({"id": r["id"] + "-copy", "text": r["text"]})
        words = r["text"].split()
        for j in rng.sample(range(len(words)), len(words) // 50):
            words[j] = "ipsum"
        rows.append({"id": r["id"] + "-near", "text": " ".join(words)})
    rng.shuffle(rows)
    folder = tmp_path / "shards"
    folder.mkdir()
    per = -(-len(rows) // SHARDS)
    for k in range(SHARDS):
        pq.write_table(pa.Table.from_pylist(rows[k * per : (k + 1) * per]), folder / f"shard-{k}.parquet")
    return folder, len(rows)


def documents(run: Path):
    with duckdb.connect(str(run / "curator.duckdb"), read_only=True) as con:
        return con.execute("SELECT id, reject_step, reject_reason, exact__dup_count, fuzzy__cluster, fuzzy__cluster_size FROM documents ORDER BY id").fetchall()


def groups(run: Path):
    with duckdb.connect(str(run / "curator.duckdb"), read_only=True) as con:
        return [con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("exact_groups", "fuzzy_groups")]


def kill_when(args: list[str], ready: Callable[[], bool], what: str) -> None:
    """Start `curator run ...`, SIGKILL its whole process group as soon as ``ready()``."""
    exe = Path(sys.executable).parent / "curator"
    proc = subprocess.Popen([str(exe), *args], cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.002)
    finished_early = proc.poll() is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    assert not finished_early, f"the run ended before the kill point ({what}): {proc.stderr.read().decode()[-2000:]}"
    assert ready(), f"the kill point ({what}) was not reached in time"


def markers(pass_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (pass_dir / "_done").glob("*.json")}


def test_dedup_run_killed_twice_resumes_to_the_uninterrupted_result(tmp_path, duplicated_shards):
    folder, n = duplicated_shards
    pipe = pipeline_file(tmp_path, PIPELINE)
    common = ["run", str(pipe), "-i", str(folder), "-q", "--batch-size", "25"]
    reference = tmp_path / "reference"
    curator_cli(*common, "-o", str(reference))

    run = tmp_path / "killed"
    args = [*common, "-o", str(run)]
    # pass-0 hashes, fit exact_groups, pass-1 = exact filter + fuzzy signatures, fit fuzzy_groups, pass-2 = fuzzy filter
    pass1 = run / "pass-1"

    # 1. mid pass-1: some shards finished, one being written
    kill_when(args, lambda: len(markers(pass1)) >= 2 and any(pass1.glob("*/.*.tmp")), "pass-1 mid-shard")
    done_before = markers(pass1)
    assert 2 <= len(done_before) < SHARDS
    assert (run / "artifacts" / "exact_groups" / "result.json").exists()

    # 2. inside the fuzzy fit: candidate edges written, no result yet
    fit_dir = run / "artifacts" / "fuzzy_groups"
    kill_when(args, lambda: (fit_dir / "fuzzy_groups_edges.parquet").exists() and not (fit_dir / "result.json").exists(), "fuzzy fit")
    assert not (fit_dir / "result.json").exists()
    assert len(markers(pass1)) == SHARDS
    # shards finished before the first kill were not redone
    assert all(markers(pass1)[name] == mtime for name, mtime in done_before.items())

    curator_cli(*args)
    assert documents(run) == documents(reference)
    assert groups(run) == groups(reference)
    assert not list(run.glob("pass-*/*/.*.tmp"))
    ids = [r[0] for r in documents(run)]
    assert len(ids) == len(set(ids)) == n
    stats = json.loads(curator_cli("stats", "--run", str(run), "--json").stdout)
    assert stats["balanced"] and stats["kept"] + stats["rejected"] == n
    rejected = {r[1] for r in documents(run) if r[1]}
    assert rejected == {"exact", "fuzzy"}
