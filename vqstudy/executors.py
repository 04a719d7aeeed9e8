"""Where jobs run: in this process, in a local spawn process pool, or on a Dask cluster.

Every parallel part of the study (sweeps, chapter 6's tokenizer + prior
pipelines) goes through :func:`run_jobs`, so one setting sends all of them to
a cluster: with no executor given, ``$VQSTUDY_SCHEDULER`` (``tcp://HOST:PORT``)
picks a Dask scheduler, else a spawn process pool runs them locally. A job is
a picklable module-level function and its arguments; it must be
self-contained and seeded, so where it ran never changes its result.

A local pool whose worker dies (killed by the OOM killer, a segfault) breaks
every pending future of the pool. :func:`run_jobs` then starts a fresh pool
and resubmits the jobs that were caught in the break; only the job that was
running on the dead worker counts a retry (``retries`` per job), and breaks no
job can be blamed for are bounded by ``restarts``.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
from collections import Counter, deque
from concurrent.futures.process import BrokenProcessPool
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Union

ExecutorSpec = Union[None, str, cf.Executor]
Job = tuple[Hashable, tuple]      # (key, positional arguments)
SCHEDULER_ENV = "VQSTUDY_SCHEDULER"
SCHEDULER_ADDRESS = re.compile(r"^tcp://(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")


def check_scheduler_address(address: str) -> str:
    """A Dask scheduler address ``tcp://host:port``, checked before any connection is tried."""
    match = SCHEDULER_ADDRESS.match(address) if isinstance(address, str) else None
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"invalid scheduler address {address!r}: expected tcp://HOST:PORT, "
                         "e.g. tcp://127.0.0.1:8786")
    return address


def default_scheduler() -> str | None:
    """The Dask scheduler named by ``$VQSTUDY_SCHEDULER`` (checked), or None.

    It is how an unchanged notebook (papermill, the main job) sends its runs to a cluster.
    """
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    if not address:
        return None
    try:
        return check_scheduler_address(address)
    except ValueError as exc:
        raise ValueError(f"${SCHEDULER_ENV}: {exc}") from None


@contextlib.contextmanager
def dask_executor(address: str, timeout: float = 10.0) -> Iterator[cf.Executor]:
    """A ``concurrent.futures`` executor on a Dask cluster, closed on exit; its workers need vqstudy."""
    from distributed import Client

    address = check_scheduler_address(address)
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    with client:
        yield client.get_executor()


def check_workers(workers: int | None, executor: ExecutorSpec) -> int:
    """The local pool size; only the default pool has one (size other executors where they are made)."""
    if not (executor is None or executor == "inline" or isinstance(executor, cf.Executor)):
        raise ValueError(f"invalid executor {executor!r}: expected None (process pool), 'inline' "
                         "or a concurrent.futures.Executor")
    if workers is None:
        return min(2, os.cpu_count() or 1)
    if executor is not None:
        raise ValueError("workers sizes only the default process pool; size the given executor itself")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"invalid workers={workers!r}: must be an integer >= 1")
    return workers


def run_jobs(fn: Callable[..., Any], jobs: Iterable[Job], executor: ExecutorSpec = None, workers: int = 1,
             kwargs: Mapping[str, Any] | None = None, retries: int = 1,
             restarts: int = 2) -> Iterator[tuple[Hashable, cf.Future]]:
    """Run ``fn(*args, **kwargs)`` for each ``(key, args)`` of ``jobs``; yield ``(key, done future)`` as each ends.

    ``executor``: ``"inline"`` (this process, in order), a
    ``concurrent.futures.Executor`` (used as is), or None: the Dask cluster of
    ``$VQSTUDY_SCHEDULER`` if set, else a spawn process pool of ``workers``
    processes. ``jobs`` is read lazily: the local pool and inline take the next
    job only when a worker is free (so a job source can claim work as it hands
    it out); other executors get every job at once. A job's own exception is in
    its future; so is ``BrokenProcessPool`` for a job given up after
    ``retries`` crashes of its worker, or after ``restarts`` breaks no job
    could be blamed for. The pool uses "spawn": a script that calls this needs
    the ``if __name__ == "__main__":`` guard.
    """
    kwargs = dict(kwargs or {})
    jobs = iter(jobs)
    if executor == "inline":
        for key, args in jobs:
            yield key, _run_here(fn, args, kwargs)
        return
    if executor is not None:
        yield from _run_on(executor, fn, jobs, kwargs)
        return
    address = default_scheduler()
    if address is not None:
        with dask_executor(address) as dask:
            yield from _run_on(dask, fn, jobs, kwargs)
        return
    yield from _run_on_pools(fn, jobs, kwargs, workers, retries, restarts)


def map_jobs(fn: Callable[..., Any], args: Iterable[tuple], executor: ExecutorSpec = None, workers: int = 1,
             kwargs: Mapping[str, Any] | None = None) -> list[Any]:
    """``[fn(*a, **kwargs) for a in args]``, run where :func:`run_jobs` runs jobs, the results in the order of
    ``args`` (whichever ends first): for a caller that needs every result before it goes on. A job's own
    exception is raised once every job has ended."""
    done = dict(run_jobs(fn, enumerate(args), executor, workers, kwargs))
    return [done[i].result() for i in range(len(done))]


def _run_here(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> cf.Future:
    future: cf.Future = cf.Future()
    try:
        future.set_result(fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the caller reads it from the future, as from any executor
        future.set_exception(exc)
    return future


def _run_on(executor: cf.Executor, fn: Callable[..., Any], jobs: Iterator[Job],
            kwargs: dict[str, Any]) -> Iterator[tuple[Hashable, cf.Future]]:
    futures = {executor.submit(fn, *args, **kwargs): key for key, args in jobs}
    for future in cf.as_completed(futures):
        yield futures[future], future


def _tracked(marker_dir: str, token: str, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """Run a job in a pool worker, leaving a marker (this worker's pid) while it runs.

    A marker left after the pool broke names a job that was running then, and its worker.
    """
    marker = Path(marker_dir) / token
    marker.write_text(str(os.getpid()))
    try:
        return fn(*args, **kwargs)
    finally:
        marker.unlink(missing_ok=True)


def _blamed(marker_dir: Path, processes: Mapping[int, Any] | None) -> set[str] | None:
    """Tokens of the jobs that were on a worker that died by itself when the pool broke.

    The pool terminates its other workers (SIGTERM) once one dies, so the job to
    blame is the one whose worker ended otherwise. None when nothing can be blamed.
    """
    running = {}
    for marker in marker_dir.iterdir():
        with contextlib.suppress(ValueError, OSError):
            running[marker.name] = int(marker.read_text())
    if processes is None:
        return None
    codes = {pid: getattr(proc, "exitcode", None) for pid, proc in processes.items()}
    blamed = {token for token, pid in running.items() if codes.get(pid) not in (None, -signal.SIGTERM)}
    return blamed or None


def _run_on_pools(fn: Callable[..., Any], jobs: Iterator[Job], kwargs: dict[str, Any], workers: int,
                  retries: int, restarts: int) -> Iterator[tuple[Hashable, cf.Future]]:
    crashes: Counter = Counter()
    unblamed = 0
    resubmit: deque[Job] = deque()
    while True:
        marker_dir = Path(tempfile.mkdtemp(prefix="vqstudy-jobs-"))
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        processes = getattr(pool, "_processes", None)   # pid -> Process: exit codes say which worker died
        source = chain([resubmit.popleft() for _ in range(len(resubmit))], jobs)
        running: dict[cf.Future, tuple[Job, str]] = {}
        broken: list[tuple[Job, str, cf.Future]] = []
        count = 0
        try:
            while True:
                while not broken and len(running) < workers:
                    job = next(source, None)
                    if job is None:
                        break
                    token = f"job{count}"
                    count += 1
                    try:
                        running[pool.submit(_tracked, str(marker_dir), token, fn, job[1], kwargs)] = (job, token)
                    except BrokenProcessPool as exc:   # broke before this job started: resubmit it
                        failed: cf.Future = cf.Future()
                        failed.set_exception(exc)
                        broken.append((job, token, failed))
                if not running:
                    break
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    job, token = running.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        broken.append((job, token, future))
                    else:
                        yield job[0], future
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        try:
            if not broken:
                return
            blamed = _blamed(marker_dir, processes if isinstance(processes, dict) else None)
        finally:
            shutil.rmtree(marker_dir, ignore_errors=True)
        if blamed is None:
            unblamed += 1
        for job, token, future in broken:
            if blamed is not None and token in blamed:
                crashes[job[0]] += 1
                if crashes[job[0]] > retries:
                    yield job[0], future
                    continue
            if unblamed > restarts:
                yield job[0], future
                continue
            resubmit.append(job)
        if unblamed > restarts:
            for job in jobs:       # never started: the pool keeps breaking, so do not start them
                future = cf.Future()
                future.set_exception(BrokenProcessPool(f"gave up after {restarts} unexplained pool breaks"))
                yield job[0], future
            return
