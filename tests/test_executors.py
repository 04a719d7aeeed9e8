"""Where jobs run: inline, a spawn pool that survives a dead worker, a given executor, Dask from the environment."""
from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from vqstudy import executors as ex


def square(folder: str, name: str, value: int) -> int:
    """A job that counts its starts and its own kills in ``folder``; 'once' kills its worker the first time,
    'always' every time."""
    starts = Path(folder) / f"{name}.starts"
    with open(starts, "a") as fh:
        fh.write("x")
    if name == "always" or (name == "once" and len(starts.read_text()) == 1):
        time.sleep(0.2)                      # let the other worker pick up a job first
        with open(Path(folder) / f"{name}.kills", "a") as fh:
            fh.write("x")
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "raises":
        raise ArithmeticError("a job's own error")
    time.sleep(0.3)
    return value * value


def _count(folder: Path, name: str, what: str = "starts") -> int:
    path = folder / f"{name}.{what}"
    return len(path.read_text()) if path.exists() else 0


def test_a_killed_worker_fails_only_its_own_run(tmp_path):
    names = ["a", "once", "b", "always", "raises", "c", "d"]
    jobs = [(name, (str(tmp_path), name, i)) for i, name in enumerate(names)]
    futures = dict(ex.run_jobs(square, jobs, workers=2, retries=1))
    assert sorted(futures) == sorted(names)
    for i, name in enumerate(names):
        if name == "always":
            with pytest.raises(BrokenProcessPool):
                futures[name].result()
        elif name == "raises":
            with pytest.raises(ArithmeticError, match="own error"):
                futures[name].result()
        else:
            assert futures[name].result() == i * i
    # A job is judged by its own deaths. A start cut short when another job killed the pool (a bystander,
    # resubmitted uncounted) may come on top of any job's starts, depending on which jobs run together.
    assert _count(tmp_path, "once", "kills") == 1 and _count(tmp_path, "once") >= 2   # retried once, completed
    assert _count(tmp_path, "always", "kills") == 2 and _count(tmp_path, "always") >= 2   # one retry, given up


def test_an_ordinary_exception_is_the_jobs_result_and_not_retried(tmp_path):
    """Without a dying worker in the run, no job is a bystander: 'raises' starts exactly once."""
    jobs = [(name, (str(tmp_path), name, i)) for i, name in enumerate(["a", "raises", "b"])]
    futures = dict(ex.run_jobs(square, jobs, workers=2, retries=1))
    with pytest.raises(ArithmeticError, match="own error"):
        futures["raises"].result()
    assert futures["a"].result() == 0 and futures["b"].result() == 4
    assert _count(tmp_path, "raises") == 1 and _count(tmp_path, "raises", "kills") == 0


def test_inline_and_given_executors_run_every_job(tmp_path):
    jobs = [(name, (str(tmp_path), name, i)) for i, name in enumerate(["a", "b", "raises"])]
    inline = dict(ex.run_jobs(square, jobs, executor="inline"))
    with cf.ThreadPoolExecutor(2) as pool:
        threads = dict(ex.run_jobs(square, jobs, executor=pool))
    for futures in (inline, threads):
        assert [futures[k].result() for k in ("a", "b")] == [0, 1]
        assert isinstance(futures["raises"].exception(), ArithmeticError)


def test_the_pool_takes_a_job_only_when_a_worker_is_free(tmp_path):
    handed: list[str] = []

    def source():
        for i, name in enumerate(["a", "b", "c"]):
            handed.append(name)
            yield name, (str(tmp_path), name, i)

    seen = []
    for key, _ in ex.run_jobs(square, source(), workers=1):
        seen.append((key, list(handed)))
    assert seen == [("a", ["a"]), ("b", ["a", "b"]), ("c", ["a", "b", "c"])]


def test_bad_scheduler_environment_and_workers_fail_clearly(monkeypatch):
    monkeypatch.setenv(ex.SCHEDULER_ENV, "localhost:8786")
    with pytest.raises(ValueError, match=r"\$VQSTUDY_SCHEDULER.*tcp://HOST:PORT"):
        list(ex.run_jobs(square, [("a", ("/nonexistent", "a", 1))]))
    with pytest.raises(ValueError, match="invalid workers=0"):
        ex.check_workers(0, None)


def test_map_jobs_returns_the_results_in_the_order_of_the_arguments_and_raises_a_jobs_error():
    assert ex.map_jobs(pow, [(2, 3), (3, 2), (2, 1)], executor="inline") == [8, 9, 2]
    assert ex.map_jobs(pow, [], executor="inline") == []
    with pytest.raises(ZeroDivisionError):
        ex.map_jobs(divmod, [(1, 1), (1, 0)], executor="inline")
