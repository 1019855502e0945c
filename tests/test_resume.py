"""A run killed with SIGKILL and started again ends with exactly the rows of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from conftest import REPO, curator_cli, pipeline_file

PIPELINE = """
steps:
  - step: text_stats
  - step: gopher_repetition
  - step: gopher_quality
  - step: fineweb_quality
"""


def rows(run: Path):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    return con.execute("SELECT id, reject_step, reject_reason, text_stats__words FROM documents ORDER BY id").fetchall()


def test_sigkill_then_resume_redoes_only_unfinished_shards(tmp_path, sharded_input):
    pipe = pipeline_file(tmp_path, PIPELINE)
    reference = tmp_path / "reference"
    curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(reference), "-q", "--batch-size", "20")

    killed = tmp_path / "killed"
    exe = Path(sys.executable).parent / "curator"
    proc = subprocess.Popen(
        [str(exe), "run", str(pipe), "-i", str(sharded_input), "-o", str(killed), "-q", "--batch-size", "20"],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done_dir = killed / "pass-0" / "_done"
    deadline = time.time() + 120
    # Kill in the middle of a shard: after at least 3 shards are done, while a
    # later shard's temporary output is being written.
    while time.time() < deadline:
        finished = len(list(done_dir.glob("*.json"))) if done_dir.exists() else 0
        partial = list((killed / "pass-0").glob("*/.*.tmp")) if (killed / "pass-0").exists() else []
        if finished >= 3 and partial:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = {p.name: p.stat().st_mtime_ns for p in done_dir.glob("*.json")}
    assert 3 <= len(finished_before) < 8, "the kill must land mid-run"

    curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(killed), "-q", "--batch-size", "20")
    after = {p.name: p.stat().st_mtime_ns for p in done_dir.glob("*.json")}
    assert len(after) == 8
    # finished shards were not redone
    assert all(after[name] == mtime for name, mtime in finished_before.items())
    assert not list((killed / "pass-0").glob("*/.*.tmp"))
    assert rows(killed) == rows(reference)
    ids = [r[0] for r in rows(killed)]
    assert len(ids) == len(set(ids)) == 697
