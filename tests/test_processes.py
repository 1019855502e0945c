"""Processes: the run directory lock, workers that die with their parent,
disk-full and permission errors as one line, and steps that crash, exit or
hang costing their shard, not the run.

Every test runs the real `curator` command in a subprocess. The faulty steps
are a real plugin: a module with a `curator` entry point (a .dist-info folder
on PYTHONPATH), loaded like any third-party plugin.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, curator_cli, pipeline_file, write_jsonl

FAULTY_PLUGIN = '''
"""Steps that misbehave on purpose, on batches holding the trigger word."""
import ctypes
import os
import sys
import time

import pyarrow as pa
from pydantic import Field

from curator import MapStep, Params, hookimpl


class Faulty(MapStep):
    name = "faulty"
    description = "misbehaves on batches whose text holds `trigger`"

    class Params(Params):
        how: str = Field("none", description="segfault | abort | exit | hang | leak | none")
        trigger: str = "BOOM"

    def process(self, batch):
        texts = batch.column("text").to_pylist()
        # lets a test see the worker inside the step, and slows it down,
        # without changing the pipeline (so a resume matches)
        if os.environ.get("FAULTY_STARTED_DIR"):
            open(os.path.join(os.environ["FAULTY_STARTED_DIR"], str(os.getpid())), "w").close()
        time.sleep(float(os.environ.get("FAULTY_SLEEP", "0")))
        if any(self.params.trigger in t for t in texts):
            how = self.params.how
            if how == "segfault":
                ctypes.string_at(0)
            elif how == "abort":
                os.abort()
            elif how == "exit":
                sys.exit(3)
            elif how == "hang":
                time.sleep(3600)
            elif how == "leak":
                hoard = []
                for _ in range(400):  # up to ~20 GB, 50 MB at a time, touched so it is resident
                    hoard.append(bytearray(50 * 2**20))
                    hoard[-1][::4096] = b"x" * len(hoard[-1][::4096])
                    time.sleep(0.02)
        return {"chars": pa.array([len(t) for t in texts], pa.int64())}


@hookimpl
def register_steps(register):
    register(Faulty)
'''


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("faulty-site")
    (site / "faulty_steps.py").write_text(FAULTY_PLUGIN)
    info = site / "faulty_steps-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: faulty-steps\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[curator]\nfaulty = faulty_steps\n")
    return site


@pytest.fixture
def env(faulty_site):
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(faulty_site), os.environ.get("PYTHONPATH")]))}


def make_inputs(folder: Path, dolma_rows, files: int = 4, rows: int = 30, boom_file: int | None = 2) -> Path:
    """`files` JSONL files of real web text; one has the trigger word in one row."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        chunk = [dict(r) for r in dolma_rows[f * rows : (f + 1) * rows]]
        if f == boom_file:
            chunk[rows // 2]["text"] += " BOOM"
        write_jsonl(folder / f"part-{f}.jsonl", chunk)
    return folder


def pipeline(tmp_path: Path, how: str, extra: str = "") -> Path:
    return pipeline_file(tmp_path, f"name: faulty\n{extra}steps:\n  - step: faulty\n    how: {how}\n  - step: text_stats\n", name=f"faulty-{how}.yaml")


def documents(run: Path) -> list[tuple]:
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return con.execute("SELECT id, reject_step, reject_reason, source FROM documents ORDER BY id").fetchall()
    finally:
        con.close()


def curator(*args: str, env: dict, **kwargs) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "curator"
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([str(exe), *args], cwd=REPO, env={**os.environ, **env}, text=True, **kwargs)


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- the run directory lock ---------------------------------------------------


def test_second_run_on_the_same_output_says_who_holds_it(tmp_path, dolma_rows, env):
    inputs = make_inputs(tmp_path / "in", dolma_rows, boom_file=None)
    pipe = pipeline(tmp_path, "none")
    run = tmp_path / "run"
    first = curator("run", str(pipe), "-i", str(inputs), "-o", str(run), "-q", "--batch-size", "5", env={**env, "FAULTY_SLEEP": "0.2"})
    try:
        wait_for(lambda: (run / ".curator.lock").exists() and (run / ".curator.lock").read_text().startswith("{"), 30, "the first run to take the lock")
        second = curator_cli("run", str(pipe), "-i", str(inputs), "-o", str(run), "-q", env=env, check=False)
        assert first.poll() is None, "the first run must still be running"
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"in use by curator run pid {first.pid} on host {socket.gethostname()}, started " in lines[0]
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.communicate()
    # The killed holder's lock is stale (its pid is gone): the next run takes it over and finishes.
    assert json.loads((run / ".curator.lock").read_text())["pid"] == first.pid
    done = curator_cli("run", str(pipe), "-i", str(inputs), "-o", str(run), "-q", "--batch-size", "5", env=env)
    assert "kept" in done.stdout
    assert len(documents(run)) == 120


def test_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path, dolma_rows, env):
    inputs = make_inputs(tmp_path / "in", dolma_rows, files=1, boom_file=None)
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / ".curator.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00"}))
    curator_cli("run", str(pipeline(tmp_path, "none")), "-i", str(inputs), "-o", str(run), "-q", env=env)
    assert json.loads((run / ".curator.lock").read_text())["pid"] != dead.pid
    assert len(documents(run)) == 30


# -- workers die with their parent --------------------------------------------


def test_killing_only_the_main_process_leaves_no_workers_and_resume_matches(tmp_path, dolma_rows, env):
    inputs = make_inputs(tmp_path / "in", dolma_rows, files=6, rows=40, boom_file=None)
    pipe = pipeline(tmp_path, "none")
    reference = tmp_path / "reference"
    curator_cli("run", str(pipe), "-i", str(inputs), "-o", str(reference), "-q", "--batch-size", "10", env=env)

    run = tmp_path / "killed"
    started = tmp_path / "started"
    started.mkdir()
    # Each batch takes 20 s: a worker that outlives its parent would still be
    # in the step long after the 5 s this test allows.
    slow = {**env, "FAULTY_SLEEP": "20", "FAULTY_STARTED_DIR": str(started)}
    # output to a file: an orphaned worker holding a pipe would block reading it
    log = open(tmp_path / "killed.log", "w")
    proc = curator("run", str(pipe), "-i", str(inputs), "-o", str(run), "-q", "--batch-size", "10", "--workers", "2", env=slow, stdout=log, stderr=log)
    try:
        wait_for(lambda: len(list(started.iterdir())) >= 2, 60, "two workers inside the step")
    except AssertionError:
        proc.kill()
        raise AssertionError((tmp_path / "killed.log").read_text()) from None
    workers = {int(p.name) for p in started.iterdir()}
    everyone = descendants(proc.pid)
    assert workers <= everyone
    os.kill(proc.pid, signal.SIGKILL)  # only the main process
    proc.wait()
    log.close()
    try:
        wait_for(lambda: not any(alive(p) for p in everyone), 5, f"workers {sorted(everyone)} to end with their parent")
    finally:
        for pid in everyone:  # if this test fails, leave no orphan behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not list((run / "pass-0" / "_done").glob("*.json")), "the kill landed mid-run"

    curator_cli("run", str(pipe), "-i", str(inputs), "-o", str(run), "-q", "--batch-size", "10", "--workers", "2", env=env)
    assert documents(run) == documents(reference)
    assert len(documents(run)) == 240


# -- steps that crash, exit or hang ---------------------------------------------


@pytest.mark.parametrize(
    "how, workers, signature",
    [
        ("segfault", "2", "SIGSEGV"),
        ("abort", "1", "SIGABRT"),
        ("exit", "2", "sys.exit(3)"),
        ("hang", "2", "step_timeout"),
    ],
)
def test_a_step_that_kills_its_worker_costs_only_its_shard(tmp_path, dolma_rows, env, how, workers, signature):
    inputs = make_inputs(tmp_path / "in", dolma_rows)
    pipe = pipeline(tmp_path, how, extra="step_timeout: 2\n" if how == "hang" else "")
    run = tmp_path / "run"
    started = time.time()
    proc = curator_cli("run", str(pipe), "-i", str(inputs), "-o", str(run), "-q", "--batch-size", "10", "--workers", workers, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert time.time() - started < 30
    assert "Traceback" not in proc.stderr
    assert "step 'faulty'" in proc.stderr and "part-2.jsonl" in proc.stderr and signature in proc.stderr
    rows = documents(run)
    assert len(rows) == 120  # kept + rejected = input
    boom_ids = {r["id"] for r in dolma_rows[60:90]}  # part-2.jsonl
    bad = [r for r in rows if r[0] in boom_ids]
    good = [r for r in rows if r[0] not in boom_ids]
    assert len(bad) == 30 and all(r[1] == "faulty" and r[2].startswith("error: worker died") and signature in r[2] for r in bad), bad[:2]
    assert all(r[3].endswith("part-2.jsonl") for r in bad)
    assert all(r[1] is None for r in good), "the other shards ran normally"
    stats = json.loads((run / "stats.json").read_text())
    assert stats["balanced"] and stats["kept"] == 90
    assert stats["funnel"][0]["step"] == "faulty" and stats["funnel"][0]["reasons"] == {"error": 30}
    quarantine = curator_cli("sql", "SELECT count(*) AS n FROM quarantine", "--run", str(run), "--format", "json").stdout
    assert json.loads(quarantine)[0]["n"] == 30


def test_a_step_that_leaks_memory_costs_only_its_shard(tmp_path, dolma_rows, env):
    inputs = make_inputs(tmp_path / "in", dolma_rows)
    pipe = pipeline(tmp_path, "leak")
    run = tmp_path / "run"
    proc = curator_cli("run", str(pipe), "-i", str(inputs), "-o", str(run), "-q", "--batch-size", "10", "--workers", "2", env={**env, "CURATOR_WORKER_MEMORY_MB": "1500"}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "step 'faulty'" in proc.stderr and "memory limit" in proc.stderr
    rows = documents(run)
    assert len(rows) == 120
    bad = [r for r in rows if r[1] is not None]
    assert len(bad) == 30 and all("memory limit" in r[2] for r in bad)
    assert json.loads((run / "stats.json").read_text())["balanced"]


def test_on_bad_input_fail_stops_the_run_with_one_line(tmp_path, dolma_rows, env):
    inputs = make_inputs(tmp_path / "in", dolma_rows)
    proc = curator_cli("run", str(pipeline(tmp_path, "segfault")), "-i", str(inputs), "-o", str(tmp_path / "run"), "-q", "--workers", "2", "--on-bad-input", "fail", env=env, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "step 'faulty'" in error[0] and "SIGSEGV" in error[0] and "part-2.jsonl" in error[0] and "stopping" in error[0]


def test_sys_exit_in_process_is_caught_and_named(tmp_path, dolma_rows, env):
    inputs = make_inputs(tmp_path / "in", dolma_rows)
    run = tmp_path / "run"
    proc = curator_cli("run", str(pipeline(tmp_path, "exit")), "-i", str(inputs), "-o", str(run), "-q", "--in-process", env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "step 'faulty' called sys.exit(3)" in proc.stderr
    rows = documents(run)
    assert len(rows) == 120 and sum(r[1] == "faulty" for r in rows) == 30


def test_a_step_that_crashes_in_setup_stops_the_run_naming_it(tmp_path, dolma_rows, env, faulty_site):
    # A step whose setup() segfaults cannot run anywhere: stop, naming it.
    (faulty_site / "faulty_setup.py").write_text(
        textwrap.dedent(
            """
            import ctypes
            from curator import MapStep, hookimpl

            class CrashSetup(MapStep):
                name = "crash_setup"
                def setup(self):
                    ctypes.string_at(0)
                def process(self, batch):
                    return {}

            @hookimpl
            def register_steps(register):
                register(CrashSetup)
            """
        )
    )
    info = faulty_site / "faulty_setup-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: faulty-setup\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[curator]\nfaulty_setup = faulty_setup\n")
    inputs = make_inputs(tmp_path / "in", dolma_rows, files=2, boom_file=None)
    pipe = pipeline_file(tmp_path, "steps:\n  - step: crash_setup\n")
    proc = curator_cli("run", str(pipe), "-i", str(inputs), "-o", str(tmp_path / "run"), "-q", env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "step 'crash_setup' (plugin 'faulty_setup') crashed its worker (killed by SIGSEGV) in setup(); stopping" in proc.stderr


# -- disk full and permission errors ------------------------------------------


@contextmanager
def tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _one_clean_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_disk_full_is_one_line_naming_the_path(tmp_path, dolma_rows, env):
    write_jsonl(tmp_path / "in" / "big.jsonl", dolma_rows[:400])
    with tmpfs(tmp_path / "small", "size=96k") as disk:
        for workers in ("1", "2"):
            run = disk / f"run{workers}"
            proc = curator_cli("run", str(pipeline(tmp_path, "none")), "-i", str(tmp_path / "in"), "-o", str(run), "-q", "--workers", workers, env=env, check=False)
            line = _one_clean_line(proc)
            assert line.startswith("Error: ") and "no space left on the device" in line and str(disk) in line, line


def test_read_only_file_system_is_one_line(tmp_path, dolma_rows, env):
    write_jsonl(tmp_path / "in" / "a.jsonl", dolma_rows[:10])
    with tmpfs(tmp_path / "ro", "ro,size=64k") as disk:
        proc = curator_cli("run", str(pipeline(tmp_path, "none")), "-i", str(tmp_path / "in"), "-o", str(disk / "run"), "-q", env=env, check=False)
        line = _one_clean_line(proc)
        assert f"{disk / 'run'}: read-only file system" in line, line


@pytest.mark.parametrize(
    "output, problem",
    [
        ("{tmp}/a-file/run", "a path component is not a directory"),
        ("/sys/curator-run", "operation not permitted"),
        ("/proc/curator-run", "no such file or directory"),
    ],
)
def test_unwritable_output_is_one_line_naming_it(tmp_path, dolma_rows, env, output, problem):
    write_jsonl(tmp_path / "in" / "a.jsonl", dolma_rows[:10])
    (tmp_path / "a-file").write_text("a file, not a folder\n")
    output = output.format(tmp=tmp_path)
    proc = curator_cli("run", str(pipeline(tmp_path, "none")), "-i", str(tmp_path / "in"), "-o", output, "-q", env=env, check=False)
    line = _one_clean_line(proc)
    assert line == f"Error: {output}: {problem}", line
