"""The sweep engine: grids, executors, the results store, resume, crash safety and the CLI."""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from vqstudy import RunConfig
from vqstudy import sweep as sw
from vqstudy.cli import main

TINY = RunConfig().replace(data={"n_per_cluster": 100}, train={"steps": 30, "eval_every": 15, "batch_size": 64},
                           quantizer={"codebook_size": 16})
TINY_BASE = {"data": {"n_per_cluster": 100}, "train": {"steps": 30, "eval_every": 15, "batch_size": 64},
             "quantizer": {"codebook_size": 16}}
FAILING = TINY.replace(data={"name": "cifar10", "root": "/nonexistent/cifar-10-batches-py"})
DIVERGING = TINY.replace(train={"lr": 1e6})
REPO = Path(__file__).resolve().parent.parent


def grid_configs() -> list[RunConfig]:
    return sw.expand_grid(TINY, {"train.seed": [0, 1], "quantizer.init": ["kmeans", "normal"]})


def comparable(record: dict) -> dict:
    """A record's result without what legitimately differs between machines and runs."""
    return {k: v for k, v in record["result"].items() if k not in ("wall_time", "environment")}


def stored(store: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in store.glob("*.json")}


def write_grid(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- grids ----------------------------------------------------------------------------------------

def test_expand_grid_is_a_stable_cartesian_product():
    configs = grid_configs()
    assert [(c.train.seed, c.quantizer.init) for c in configs] == [
        (0, "kmeans"), (0, "normal"), (1, "kmeans"), (1, "normal")]
    assert all(c.quantizer.codebook_size == 16 for c in configs)
    assert sw.expand_grid(TINY, {}) == [TINY]
    assert [sw.config_key(c) for c in configs] == [sw.config_key(c) for c in grid_configs()]


def test_load_grid_reads_base_and_axes(tmp_path):
    path = write_grid(tmp_path / "g.yaml", f"base: {json.dumps(TINY_BASE)}\n"
                      "axes:\n  train.seed: [0, 1]\n  quantizer.init: [kmeans, normal]\n")
    assert sw.load_grid(path) == grid_configs()


@pytest.mark.parametrize("axes, words", [
    ({"quantizer.size": [1]}, ["quantizer.size", "no field 'size'"]),
    ({"quant.codebook_size": [1]}, ["quant.codebook_size", "no section"]),
    ({"steps": [1]}, ["'steps'", "section.field"]),
    ({"train.seed": []}, ["train.seed", "empty"]),
    ({"train.seed": 3}, ["train.seed", "list", "3"]),
    ({"train.seed": [0, 0]}, ["train.seed", "twice"]),
    ({"quantizer.codebook_size": [16, 0]}, ["quantizer.codebook_size=0"]),
    ({"train.lr": ["1e-3"]}, ["train.lr='1e-3'", "1.0e-3"]),
    ({"train.schedule": ["deferred"], "train.seed": [0]}, ["train.warmup_steps", "deferred"]),
])
def test_bad_axes_fail_up_front_naming_axis_and_value(axes, words):
    with pytest.raises(ValueError) as info:
        sw.expand_grid(TINY, axes)
    for word in words:
        assert word in str(info.value)


# --- the CLI rejects bad input before writing anything ---------------------------------------------

GOOD_GRID = f"base: {json.dumps(TINY_BASE)}\naxes:\n  train.seed: [0]\n"


@pytest.mark.parametrize("grid_text, extra, words", [
    (None, [], ["grid file not found"]),
    ("axes: [unclosed\n", [], ["not valid YAML"]),
    ("", [], ["expected a mapping", "NoneType"]),
    ("- train.seed\n", [], ["expected a mapping", "list"]),
    ("axis:\n  train.seed: [0]\n", [], ["unknown key", "axis"]),
    ("base: {train: {steps: -1}}\n", [], ["invalid base", "train.steps=-1"]),
    ("axes:\n  quantizer.size: [1]\n", [], ["quantizer.size"]),
    ("axes:\n  train.seed: []\n", [], ["train.seed", "empty"]),
    ("axes:\n  train.seed: 5\n", [], ["train.seed", "list"]),
    ("axes:\n  quantizer.codebook_size: [8, -1]\n", [], ["quantizer.codebook_size=-1"]),
    (GOOD_GRID, ["--workers", "0"], ["--workers", "positive integer"]),
    (GOOD_GRID, ["--scheduler", "http://127.0.0.1:8786"], ["--scheduler", "tcp://HOST:PORT"]),
    (GOOD_GRID, ["--scheduler", "tcp://127.0.0.1"], ["--scheduler", "tcp://HOST:PORT"]),
    (GOOD_GRID, ["--scheduler", "tcp://127.0.0.1:70000"], ["--scheduler", "tcp://HOST:PORT"]),
    (GOOD_GRID, ["--workers", "1", "--scheduler", "tcp://127.0.0.1:8786"], ["not allowed with"]),
])
def test_cli_rejects_bad_grids_and_arguments(tmp_path, capsys, grid_text, extra, words):
    grid = tmp_path / "grid.yaml"
    if grid_text is not None:
        grid.write_text(grid_text)
    out = tmp_path / "out"
    try:
        code = main(["sweep", str(grid), "--out", str(out), *extra])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert not out.exists()


def test_malformed_grid_yaml_is_one_line_naming_file_line_and_problem(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", "base:\n  data: {n_per_cluster: 100\naxes:\n  train.seed: [0]\n")
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"vqstudy sweep: error: grid file {grid} is not valid YAML: line 3, column 5: expected ',' or '}}', "
        "but got ':' (while parsing a flow mapping at line 2, column 9)\n")


def test_cli_rejects_an_out_path_that_is_a_file(tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", GOOD_GRID)
    (tmp_path / "out").write_text("not a folder")
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_bad_scheduler_environment_fails_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv(sw.SCHEDULER_ENV, "localhost:8786")
    with pytest.raises(ValueError, match=r"\$VQSTUDY_SCHEDULER.*tcp://HOST:PORT"):
        sw.run_sweep([TINY], tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()


def test_run_sweep_rejects_bad_arguments(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(ValueError, match="workers"):
        sw.run_sweep([TINY], store, workers=0)
    with pytest.raises(ValueError, match="workers sizes only"):
        sw.run_sweep([TINY], store, executor="inline", workers=2)
    with pytest.raises(ValueError, match="invalid executor"):
        sw.run_sweep([TINY], store, executor="threads")
    with pytest.raises(TypeError, match="wrap it in a list"):
        sw.run_sweep(TINY, store)
    with pytest.raises(TypeError, match="dict"):
        sw.run_sweep([TINY.to_dict()], store)
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        with sw.dask_executor("localhost:8786"):
            pass
    assert not store.exists()


# --- executors give identical records ------------------------------------------------------------

def test_process_pool_dask_and_inline_give_identical_records(tmp_path, monkeypatch):
    from distributed import LocalCluster

    configs = grid_configs()
    pool = sw.run_sweep(configs, tmp_path / "pool", workers=2, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        with sw.dask_executor(cluster.scheduler_address) as executor:
            dask = sw.run_sweep(configs, tmp_path / "dask", executor=executor, progress=False)
        # the default executor follows $VQSTUDY_SCHEDULER: how unchanged notebooks run on a cluster
        monkeypatch.setenv(sw.SCHEDULER_ENV, cluster.scheduler_address)
        env = sw.run_sweep(configs, tmp_path / "env", progress=False)
        monkeypatch.delenv(sw.SCHEDULER_ENV)
    inline = sw.run_sweep(configs, tmp_path / "inline", executor="inline", progress=False)
    assert pool.done == dask.done == env.done == inline.done == 4
    records = {name: stored(tmp_path / name) for name in ("pool", "dask", "env", "inline")}
    for key in pool.keys:
        assert comparable(records["env"][key]) == comparable(records["pool"][key])
    assert sorted(records["pool"]) == sorted(pool.keys)
    for key in pool.keys:
        assert records["pool"][key]["status"] == "ok"
        assert comparable(records["pool"][key]) == comparable(records["dask"][key]) \
            == comparable(records["inline"][key])
    assert records["pool"][pool.keys[0]]["code_version"]["vqstudy"] == "0.1.0"


# --- failures, divergence, resume, corruption ----------------------------------------------------

def test_failures_and_divergence_are_recorded_and_resume_skips(tmp_path):
    store = tmp_path / "store"
    configs = [TINY, FAILING, DIVERGING, TINY.replace(train={"seed": 1})]
    first = sw.run_sweep(configs, store, executor="inline", progress=False)
    assert (first.done, first.skipped, first.failed, first.diverged) == (3, 0, 1, 1)
    records = {r["key"]: r for r in stored(store).values()}
    failed = records[sw.config_key(FAILING)]
    assert failed["status"] == "failed" and failed["result"] is None
    assert failed["reason"].startswith("FileNotFoundError: CIFAR-10 folder not found")
    assert "Traceback" in failed["traceback"]
    diverged = records[sw.config_key(DIVERGING)]
    assert diverged["status"] == "diverged" and "non-finite" in diverged["reason"]
    assert records[sw.config_key(TINY)]["status"] == "ok"

    mtimes = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    again = sw.run_sweep(configs, store, executor="inline", progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 4, 0)
    retry = sw.run_sweep(configs, store, executor="inline", rerun_failed=True, progress=False)
    assert (retry.done, retry.skipped, retry.failed) == (0, 3, 1)
    changed = {p.name for p in store.iterdir() if p.stat().st_mtime_ns != mtimes.get(p.name)}
    assert changed == {f"{sw.config_key(FAILING)}.json"}

    frame = sw.results_table(store)
    assert len(frame) == 4 and set(frame["status"]) == {"ok", "failed", "diverged"}
    assert set(frame["quantizer.codebook_size"]) == {16}
    assert frame.loc[frame["status"] == "ok", "utilization"].notna().all()
    with pytest.raises(sw.SweepError, match="FileNotFoundError"):
        sw.load_runs(configs, store)
    runs = sw.load_runs([DIVERGING, TINY], store)
    assert [r.status for r in runs] == ["diverged", "ok"] and runs[1].config == TINY


class BrokenExecutor(cf.Executor):
    """An executor whose workers all die, as a pool does when one is OOM-killed."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_exception(BrokenProcessPool("a worker died"))
        return future


def test_executor_failures_are_counted_but_not_stored(tmp_path):
    store = tmp_path / "store"
    with pytest.warns(UserWarning, match="BrokenProcessPool: a worker died"):
        broken = sw.run_sweep([TINY], store, executor=BrokenExecutor(), progress=False)
    assert (broken.done, broken.failed) == (0, 1) and list(store.iterdir()) == []
    assert sw.run_sweep([TINY], store, executor="inline", progress=False).done == 1


def _two_stored_runs(tmp_path: Path) -> tuple[Path, list[RunConfig], Path, str]:
    """A store with two runs: (store, configs, the first run's record, its text)."""
    store = tmp_path / "store"
    configs = [TINY, TINY.replace(train={"seed": 1})]
    sw.run_sweep(configs, store, executor="inline", progress=False)
    path = store / f"{sw.config_key(TINY)}.json"
    return store, configs, path, path.read_text()


def test_corrupt_records_are_rerun_never_returned(tmp_path, capsys):
    store, configs, path, good = _two_stored_runs(tmp_path)
    path.write_text(good[: len(good) // 2])                          # half-written
    (store / f".{path.name}.abc.tmp").write_text(good[:10])          # a stale temp file
    (store / "notes.json").write_text("{}")                           # not a record
    with pytest.warns(UserWarning, match="corrupt sweep record"):
        assert len(sw.results_table(store)) == 1
    with pytest.warns(UserWarning, match="invalid JSON"):
        summary = sw.run_sweep(configs, store, executor="inline")
    assert (summary.done, summary.skipped) == (1, 1)
    assert "sweep: 1 done, 1 skipped, 0 failed in" in capsys.readouterr().err
    assert comparable(json.loads(path.read_text())) == comparable(json.loads(good))
    bad_key = json.loads(good) | {"config": TINY.replace(train={"seed": 7}).to_dict()}
    path.write_text(json.dumps(bad_key))
    with pytest.warns(UserWarning, match="does not hash to its key"):
        assert sw.read_record(path) is None


def test_records_that_are_not_utf8_are_named_and_rerun(tmp_path, capsys):
    store, configs, path, good = _two_stored_runs(tmp_path)
    path.write_bytes(b"\xff\xfe" + good.encode()[2:])
    with pytest.warns(UserWarning, match=rf"corrupt sweep record {path}: invalid UTF-8 text \(byte 0xff at position 0"):
        frame = sw.results_table(store)
    assert list(frame["key"]) == [sw.config_key(configs[1])]
    with pytest.warns(UserWarning, match="invalid UTF-8 text"):
        summary = sw.run_sweep(configs, store, executor="inline", progress=False)
    assert (summary.done, summary.skipped) == (1, 1)
    assert comparable(json.loads(path.read_text())) == comparable(json.loads(good))
    grid = write_grid(tmp_path / "grid.yaml", f"base: {json.dumps(TINY_BASE)}\naxes:\n  train.seed: [0, 1]\n")
    path.write_bytes(b"\xff")
    with pytest.warns(UserWarning, match="invalid UTF-8 text"):
        assert main(["sweep", str(grid), "--out", str(store), "--workers", "1"]) == 0
    assert "sweep: 1 done, 1 skipped, 0 failed" in capsys.readouterr().err


def test_the_next_run_removes_stale_temporary_files_only(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    name = f"{sw.config_key(TINY)}.json"
    stale, fresh = store / f".{name}.a1b2c3d4.tmp", store / f".{name}.e5f6g7h8.tmp"
    for path in (stale, fresh):
        path.write_text('{"key": "half a rec')
    then = time.time() - 2 * 3600                      # left by a write killed two hours ago
    os.utime(stale, (then, then))
    sw.run_sweep([TINY], store, executor="inline", progress=False)
    assert sorted(p.name for p in store.iterdir()) == sorted([name, fresh.name])


def test_a_run_claimed_elsewhere_is_waited_for_and_taken_once_stale(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    claim = store / f"{sw.config_key(TINY)}.claim"
    claim.write_text(json.dumps({"host": "another-machine", "pid": 1, "since": time.time()}))
    started = time.monotonic()
    summary = sw.run_sweep([TINY, TINY.replace(train={"seed": 1})], store, executor="inline", progress=False,
                           claim_timeout=3.0)
    assert summary.done == 2 and time.monotonic() - started >= 3.0     # waited for the claim to go stale
    assert sorted(p.suffix for p in store.iterdir()) == [".json", ".json"]  # no claim left behind


def _six_sizes_grid(tmp_path, steps: int):
    """A grid of six runs with distinct codebook sizes, not seeds: seeds of one configuration train as one
    batch and are stored together."""
    return write_grid(tmp_path / "grid.yaml", "base:\n  data: {n_per_cluster: 100}\n"
                      f"  train: {{steps: {steps}, eval_every: {steps // 2}, batch_size: 64}}\n"
                      "axes:\n  quantizer.codebook_size: [16, 17, 18, 19, 20, 21]\n")


def test_two_concurrent_sweeps_share_the_runs(tmp_path):
    runs = 6
    grid = _six_sizes_grid(tmp_path, steps=300)
    out = tmp_path / "out"
    first, second = _sweep_process(grid, out), _sweep_process(grid, out)
    done = []
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        summary = re.search(r"sweep: (\d+) done, (\d+) skipped, 0 failed", err)
        assert summary, err
        done.append(int(summary[1]))
        assert int(summary[1]) + int(summary[2]) == runs
    assert sum(done) == runs                            # each run computed once, by one of the two
    records = stored(out)
    assert len(records) == runs and all(r["status"] == "ok" for r in records.values())
    assert sorted(p.suffix for p in out.iterdir()) == [".json"] * runs


def test_sweep_default_store_is_fresh_and_recomputes(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.delenv(sw.RUN_STORE_ENV, raising=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    calls = []
    real_train = sw.train_seeds
    monkeypatch.setattr(sw, "train_seeds", lambda configs, **kw: calls.extend(configs) or real_train(configs, **kw))
    configs = [TINY, TINY.replace(train={"seed": 1}), TINY]
    first = sw.sweep(configs, executor="inline", progress=False)
    second = sw.sweep(configs, executor="inline", progress=False)
    assert len(calls) == 4                         # duplicates run once, and nothing is reused
    assert list(scratch.iterdir()) == []
    assert [r.config for r in first] == configs
    assert [r.to_dict()["evals"] for r in first] == [r.to_dict()["evals"] for r in second]
    kept = sw.sweep(configs, tmp_path / "kept", executor="inline", progress=False)
    assert len(calls) == 6 and kept[0].history == first[0].history


def test_the_main_jobs_run_store_is_shared_by_sweeps_without_a_store(tmp_path, monkeypatch):
    """``$VQSTUDY_RUN_STORE`` (set by the main job for its chapters): the second sweep reads the first's runs."""
    calls = []
    real_train = sw.train_seeds
    monkeypatch.setattr(sw, "train_seeds", lambda configs, **kw: calls.extend(configs) or real_train(configs, **kw))
    monkeypatch.setenv(sw.RUN_STORE_ENV, str(tmp_path / "shared"))
    first = sw.sweep([TINY, TINY.replace(train={"seed": 1})], executor="inline", progress=False)
    second = sw.sweep([TINY.replace(train={"seed": 1}), TINY.replace(train={"seed": 2})], executor="inline",
                      progress=False)
    assert [c.train.seed for c in calls] == [0, 1, 2]           # seed 1 was trained once, by the first sweep
    assert len(list((tmp_path / "shared").glob("*.json"))) == 3
    assert second[0].to_dict() == first[1].to_dict()
    monkeypatch.setenv(sw.RUN_STORE_ENV, "  ")                    # blank: a throwaway store again
    sw.sweep([TINY], executor="inline", progress=False)
    assert len(calls) == 4


# --- crash safety ---------------------------------------------------------------------------------

def _sweep_process(grid: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vqstudy.cli", "sweep", str(grid), "--out", str(out),
                             "--workers", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for_records(out: Path, proc: subprocess.Popen, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        count = len(list(out.glob("*.json"))) if out.is_dir() else 0
        if count:
            return count
        time.sleep(0.05)
    raise AssertionError(f"no record within {timeout} s (exit code {proc.poll()})")


def test_sigkill_mid_sweep_then_resume_gives_each_run_once_and_identical(tmp_path):
    runs = 6
    grid = _six_sizes_grid(tmp_path, steps=1200)
    out = tmp_path / "out"
    proc = _sweep_process(grid, out)
    try:
        _wait_for_records(out, proc)
        assert proc.poll() is None, "the sweep finished before it could be killed: make runs longer"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    survived = len(list(out.glob("*.json")))
    assert 1 <= survived < runs

    resumed = _sweep_process(grid, out)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert f"sweep: {runs - survived} done, {survived} skipped, 0 failed" in err

    configs = sw.load_grid(grid)
    records = stored(out)
    assert sorted(records) == sorted(sw.config_key(c) for c in configs)
    assert all(r["status"] == "ok" and r["key"] == key for key, r in records.items())
    assert len(sw.results_table(out)) == runs            # leftover temp files are not records
    reference = tmp_path / "reference"
    sw.run_sweep(configs, reference, executor="inline", progress=False)
    expected = stored(reference)
    assert all(comparable(records[key]) == comparable(expected[key]) for key in expected)
