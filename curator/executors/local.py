"""The local executor: shards in parallel worker processes, no Ray needed.

Two ways to run a pass:

* **in this process** (one worker, no ``step_timeout``, ``isolate`` off):
  no start-up cost, easy to debug; a step that calls ``sys.exit`` is still
  caught and named, but one that crashes the interpreter takes the run with it.
* **isolated** (``--workers`` > 1, a ``step_timeout``, or ``isolate=True`` as
  ``curator run`` sets): spawned worker processes that each receive the
  pickled steps once and call ``setup()`` once, so models load once per
  worker, as on Ray. The driver hands out one shard at a time over a pipe and
  knows which shard each worker holds; each worker notes in shared memory
  which step it is in and since when (a memory write per step call, no IPC
  per batch). So a worker that segfaults, exits or overruns ``step_timeout``
  is attributed to its step and shard, its shard is quarantined (every row
  rejected with ``reject_step`` = the step and reason ``error: worker
  died ...``) or the run stops with one message, as ``on_step_failure`` says,
  and a fresh worker takes its place.

Workers die with the driver: on Linux through ``PR_SET_PDEATHSIG``, elsewhere
through a thread that watches the parent pid.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from curator.errors import StepError
from curator.executors import OnShardDone
from curator.passes import PassOptions, _with_reject, input_fingerprint, kept_path, marker_path, process_unit, rejected_path, remove_outputs
from curator.shards import AtomicParquetWriter, InputReader, WorkUnit, chunk_paths, write_json_atomic
from curator.steps import FilterStep, Step

# Slots of a worker's shared state: the index of the step it is running
# (-1: none, i.e. reading or writing), when that call started (monotonic
# clock, shared by all processes of the machine), whether it is in setup(),
# and the last step a call of which raised (to name the step behind sys.exit).
_STEP, _SINCE, _SETUP, _RAISED = 0, 1, 2, 3
_NO_STEP = -1.0


class WorkerDied(Exception):
    """A worker process ended or was stopped while it held a shard."""


def _die_with_parent(parent_pid: int) -> None:
    """Make this process end when the driver ends, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                # The parent may have died before prctl took effect.
                if os.getppid() != parent_pid:
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="curator-parent-watch", daemon=True).start()


def _instrument(steps: Sequence[Step], state: Any) -> None:
    """Record in shared memory which step runs, around each step call (no IPC)."""
    for index, step in enumerate(steps):
        method = "filter" if isinstance(step, FilterStep) else "process"
        original = getattr(step, method)

        def timed(batch: Any, _original: Callable[[Any], Any] = original, _index: float = float(index)) -> Any:
            state[_STEP] = _index
            state[_SINCE] = time.monotonic()
            try:
                return _original(batch)
            except BaseException:
                state[_RAISED] = _index
                raise
            finally:
                state[_STEP] = _NO_STEP

        setattr(step, method, timed)


def _worker_main(conn: Connection, steps: Sequence[Step], state: Any, parent_pid: int) -> None:
    """A worker: set the steps up once, then process the shards the driver sends."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _instrument(steps, state)
    for index, step in enumerate(steps):
        state[_STEP], state[_SINCE], state[_SETUP] = float(index), time.monotonic(), 1.0
        try:
            step.check_dependencies()
            step.setup()
        except BaseException as exc:  # noqa: BLE001 - reported to the driver by step name
            conn.send(("setup_failed", index, _describe(exc), _picklable(exc)))
            return
    state[_STEP], state[_SETUP] = _NO_STEP, 0.0
    conn.send(("ready",))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        kind, unit, pass_dir, options, extra = job
        try:
            if kind == "unit":
                result = process_unit(unit, steps, pass_dir, options)
            else:
                result = quarantine_unit(unit, pass_dir, options, *extra)
            conn.send(("done", result))
        except SystemExit as exc:
            conn.send(("exit", int(state[_RAISED]), f"called sys.exit({exc.code!r})", None))
        except BaseException as exc:  # noqa: BLE001 - the driver decides what to do
            conn.send(("error", int(state[_STEP]), _describe(exc), _picklable(exc)))
        finally:
            state[_STEP] = _NO_STEP


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _picklable(exc: BaseException) -> BaseException | None:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - some exceptions do not pickle; their text is sent instead
        return None


def quarantine_unit(unit: WorkUnit, pass_dir: Path, options: PassOptions, step_name: str, reason: str) -> dict[str, Any]:
    """Reject every row of a shard a step could not get through, with the reason.

    Runs in a worker (reading the shard again may be what crashed). Rows the
    reader already sets aside keep their own ``read`` reason; the rest get
    ``reject_step = step_name``. Any partial output of the failed attempt is
    replaced, so kept + rejected = input still holds.
    """
    started = time.perf_counter()
    fingerprint = input_fingerprint(unit.path, options.fingerprint)
    reader = InputReader(options.input, options.batch_size, options.on_bad_input)
    writer = AtomicParquetWriter(rejected_path(pass_dir, unit), row_group_rows=options.row_group_rows, max_rows=options.max_shard_rows)
    rejected: dict[str, Counter[str]] = {}
    n_input = 0
    source = unit.origin or unit.path
    try:
        for good, bad in reader.read(unit):
            if bad is not None and bad.num_rows:
                n_input += bad.num_rows
                for bad_reason in bad.column("reject_reason").to_pylist():
                    rejected.setdefault("read", Counter())[bad_reason.split(":", 1)[0]] += 1
                writer.write(bad)
            if good.num_rows:
                n_input += good.num_rows
                rejected.setdefault(step_name, Counter())["error"] += good.num_rows
                writer.write(_with_reject(good, step_name, [reason] * good.num_rows, source))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    for path in chunk_paths(kept_path(pass_dir, unit)):
        path.unlink(missing_ok=True)
    for tmp in kept_path(pass_dir, unit).parent.glob(f".{unit.shard}.*.tmp"):
        tmp.unlink(missing_ok=True)
    stats = {
        "shard": unit.shard,
        "source": unit.path,
        "input": n_input,
        "kept": 0,
        "rejected": {step: dict(reasons) for step, reasons in rejected.items()},
        "errors": {step_name: [reason]},
        "unreadable": reader.unreadable,
        "warnings": reader.warnings + [f"{source}: shard quarantined: {reason}"],
        "step_seconds": {},
        "seconds": time.perf_counter() - started,
        "fingerprint": fingerprint,
    }
    write_json_atomic(marker_path(pass_dir, unit), stats)
    return stats


def mark_unreadable(unit: WorkUnit, pass_dir: Path, problem: str, fingerprint: str = "stat") -> dict[str, Any]:
    """A shard that kills every worker that reads it: reported by name, row count unknown."""
    stats = {
        "shard": unit.shard,
        "source": unit.path,
        "input": 0,
        "kept": 0,
        "rejected": {},
        "errors": {},
        "unreadable": [{"source": unit.origin or unit.path, "problem": problem, "rows": None}],
        "warnings": [],
        "step_seconds": {},
        "seconds": 0.0,
        "fingerprint": input_fingerprint(unit.path, fingerprint),
    }
    remove_outputs(pass_dir, unit)
    write_json_atomic(marker_path(pass_dir, unit), stats)
    return stats


def _rss_mb(pid: int | None) -> float:
    """Resident memory of a process in MB (Linux /proc; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class _Worker:
    def __init__(self, context: Any, steps: Sequence[Step]) -> None:
        self.state = context.RawArray("d", [_NO_STEP, 0.0, 0.0, _NO_STEP])
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child_conn, list(steps), self.state, os.getpid()), name="curator-worker", daemon=True)
        self.process.start()
        child_conn.close()
        self.ready = False
        self.job: tuple[str, WorkUnit, tuple[Any, ...]] | None = None  # (kind, unit, extra)

    def send(self, kind: str, unit: WorkUnit, pass_dir: Path, options: PassOptions, extra: tuple[Any, ...] = ()) -> None:
        self.state[_STEP] = self.state[_RAISED] = _NO_STEP
        self.job = (kind, unit, extra)
        self.conn.send((kind, unit, pass_dir, options, extra))

    def step_running(self) -> tuple[int, float] | None:
        index = int(self.state[_STEP])
        return (index, time.monotonic() - self.state[_SINCE]) if index >= 0 else None

    def stop(self, kill: bool = False) -> None:
        if self.process.is_alive():
            if kill:
                self.process.kill()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    pass
        self.process.join(timeout=None if kill else 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class LocalExecutor:
    def __init__(self, workers: int = 1, step_timeout: float | None = None, on_step_failure: str = "quarantine", isolate: bool | None = None) -> None:
        self.workers = max(1, workers)
        self.step_timeout = step_timeout
        self.on_step_failure = on_step_failure
        self.isolate = isolate
        # a step that leaks costs its shard, not the machine: workers above this RSS are stopped
        limit = os.environ.get("CURATOR_WORKER_MEMORY_MB")
        self.memory_limit_mb = float(limit) if limit else None

    def _isolated(self) -> bool:
        if self.isolate is not None:
            return self.isolate
        return self.workers > 1 or self.step_timeout is not None or self.memory_limit_mb is not None

    def run_pass(self, steps: Sequence[Step], units: Sequence[WorkUnit], pass_dir: Path, options: PassOptions, on_done: OnShardDone) -> None:
        if not units:
            return
        if self._isolated():
            _Pool(steps, pass_dir, options, self, on_done).run(units)
            return
        state = [_NO_STEP, 0.0, 0.0, _NO_STEP]
        _instrument(steps, state)
        try:
            self._run_in_process(steps, units, pass_dir, options, on_done, state)
        finally:
            for step in steps:  # the step objects go back as they came
                step.__dict__.pop("filter", None)
                step.__dict__.pop("process", None)

    def _run_in_process(self, steps: Sequence[Step], units: Sequence[WorkUnit], pass_dir: Path, options: PassOptions, on_done: OnShardDone, state: list[float]) -> None:
        for step in steps:
            try:
                step.check_dependencies()
                step.setup()
            except SystemExit as exc:
                raise StepError(f"step {step.name!r} called sys.exit({exc.code!r}) in setup()") from None
        for unit in units:
            state[_RAISED] = _NO_STEP
            try:
                stats = process_unit(unit, steps, pass_dir, options)
            except SystemExit as exc:
                # A step that calls sys.exit must not end the run silently.
                index = int(state[_RAISED])
                name = steps[index].name if index >= 0 else "read"
                stats = self._failed(name, unit, f"called sys.exit({exc.code!r})", functools.partial(quarantine_unit, unit, pass_dir, options, name))
            on_done(stats)

    def _failed(self, step_name: str, unit: WorkUnit, what: str, quarantine: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        where = f"step {step_name!r} {what} on shard {unit.shard} ({unit.origin or unit.path})"
        if self.on_step_failure == "fail":
            raise StepError(f"{where}; stopping (on_bad_input: fail)")
        print(f"curator: {where}; its rows are quarantined", file=sys.stderr)
        return quarantine(f"error: worker died: {where}")

    def run_fit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def close(self) -> None:
        pass


class _Pool:
    """Managed worker processes for one pass (see the module docstring)."""

    def __init__(self, steps: Sequence[Step], pass_dir: Path, options: PassOptions, executor: LocalExecutor, on_done: OnShardDone) -> None:
        self.steps = list(steps)
        self.pass_dir = pass_dir
        self.options = options
        self.executor = executor
        self.on_done = on_done
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []

    def run(self, units: Sequence[WorkUnit]) -> None:
        # (kind, unit, extra): "unit" jobs process a shard, "quarantine" jobs set one aside
        queue: deque[tuple[str, WorkUnit, tuple[Any, ...]]] = deque(("unit", u, ()) for u in units)
        size = min(self.executor.workers, len(units))
        try:
            self.workers = [_Worker(self.context, self.steps) for _ in range(size)]
            while queue or any(w.job for w in self.workers):
                for worker in self.workers:
                    if worker.ready and worker.job is None and queue:
                        kind, unit, extra = queue.popleft()
                        worker.send(kind, unit, self.pass_dir, self.options, extra)
                self._wait(queue)
        finally:
            for worker in self.workers:
                worker.stop(kill=sys.exc_info()[0] is not None)

    def _wait(self, queue: deque[tuple[str, WorkUnit, tuple[Any, ...]]]) -> None:
        timeout = self.executor.step_timeout
        handles: dict[Any, _Worker] = {}
        for worker in self.workers:
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        ready = wait(list(handles), timeout=self._poll_seconds())
        seen: set[int] = set()
        for handle in ready:
            worker = handles[handle]
            if id(worker) in seen:
                continue
            seen.add(id(worker))
            if worker.conn.poll():
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None:
                    self._on_message(worker, message, queue)
                    continue
            if not worker.process.is_alive() or handle is worker.process.sentinel:
                worker.process.join(timeout=1)
                self._on_death(worker, f"crashed its worker ({_exit_description(worker.process.exitcode)})", queue)
        limit = self.executor.memory_limit_mb
        for worker in list(self.workers):
            running = worker.step_running()
            if worker.job is None:
                continue
            if timeout is not None and running is not None and running[1] > timeout:
                worker.stop(kill=True)
                self._on_death(worker, f"ran over step_timeout ({timeout:g} s on one batch); its worker was stopped", queue, index=running[0])
            elif limit is not None and _rss_mb(worker.process.pid) > limit:
                worker.stop(kill=True)
                where = running[0] if running is not None else None
                self._on_death(worker, f"used more than the worker memory limit ({limit:g} MB, CURATOR_WORKER_MEMORY_MB); its worker was stopped", queue, index=where)

    def _poll_seconds(self) -> float | None:
        polls = []
        if self.executor.step_timeout is not None:
            polls.append(min(1.0, max(0.05, self.executor.step_timeout / 4)))
        if self.executor.memory_limit_mb is not None:
            polls.append(0.25)
        return min(polls) if polls else None

    def _on_message(self, worker: _Worker, message: tuple[Any, ...], queue: deque[tuple[str, WorkUnit, tuple[Any, ...]]]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            return
        if kind == "setup_failed":
            _, index, text, exc = message
            raise StepError(f"step {self.steps[index].name!r} failed in setup(): {text}") from exc
        job = worker.job
        assert job is not None
        worker.job = None
        if kind == "done":
            self.on_done(message[1])
            return
        _, index, text, exc = message
        if kind == "error":
            # An ordinary exception (bad input in fail mode, a broken step
            # contract, disk full): the run stops with it, as in-process.
            if exc is not None:
                raise exc
            raise StepError(f"shard {job[1].shard} ({job[1].origin or job[1].path}): {text}")
        self._fail_job(job, index, text, queue)  # "exit": sys.exit in a step

    def _on_death(self, worker: _Worker, what: str, queue: deque[tuple[str, WorkUnit, tuple[Any, ...]]], index: int | None = None) -> None:
        if index is None:
            running = worker.step_running()
            index = running[0] if running is not None else -1
        in_setup = worker.state[_SETUP] == 1.0
        job = worker.job
        worker.stop(kill=True)
        self.workers.remove(worker)
        if in_setup or not worker.ready:
            name = self.steps[index].name if 0 <= index < len(self.steps) else "?"
            if name == "?":
                raise StepError(f"a worker process {what.replace('crashed its worker', 'ended')} before its steps were set up; stopping (see above)")
            raise StepError(f"step {name!r} {what} in setup(); stopping")
        if job is not None:
            self._fail_job(job, index, what, queue)
        self.workers.append(_Worker(self.context, self.steps))

    def _fail_job(self, job: tuple[str, WorkUnit, tuple[Any, ...]], index: int, what: str, queue: deque[tuple[str, WorkUnit, tuple[Any, ...]]]) -> None:
        kind, unit, _ = job
        if kind == "quarantine":
            # Reading the shard again killed a worker too: report the file by name.
            problem = f"could not be read without killing the worker ({what})"
            print(f"curator: shard {unit.shard} ({unit.origin or unit.path}) {problem}", file=sys.stderr)
            self.on_done(mark_unreadable(unit, self.pass_dir, problem, self.options.fingerprint))
            return
        name = self.steps[index].name if 0 <= index < len(self.steps) else "read"
        self.executor._failed(name, unit, what, lambda reason: self._queue_quarantine(queue, unit, name, reason))

    def _queue_quarantine(self, queue: deque[tuple[str, WorkUnit, tuple[Any, ...]]], unit: WorkUnit, name: str, reason: str) -> dict[str, Any]:
        queue.appendleft(("quarantine", unit, (name, reason)))
        return {}
