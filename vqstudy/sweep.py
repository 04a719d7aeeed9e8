"""One sweep engine for notebooks, the command line and the main job.

A grid (a base config and ``section.field`` axes) expands to run configs; each
config is trained by any :class:`concurrent.futures.Executor` (a local process
pool by default, ``"inline"`` in this process, or a Dask/SLURM executor) and
its outcome is stored as one JSON record, ``<store>/<sha256 of config>.json``,
written atomically. Because training is deterministic given its config, a
record is the run: a rerun skips what is stored (resume after a crash), and
which executor ran a config does not change its result. A run is claimed
(``<key>.claim``, created exclusively) before it starts, so sweeps and Dask
clients running on one store at the same time share the runs instead of
computing each twice.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import functools
import hashlib
import itertools
import json
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from tqdm import tqdm

from . import numerics
from ._version import __version__
from .config import RunConfig, positive_int
from .diagnostics import scalar_metrics
from .executors import (SCHEDULER_ENV, ExecutorSpec, check_scheduler_address, check_workers,  # noqa: F401
                        dask_executor, default_scheduler, run_jobs)
from .io import CLAIM_STALE_S, ClaimSet, FileFormatError, read_json, read_yaml, remove_stale_temps, write_atomic
from .repro import git_revision
from .seedbatch import batch_problem, seed_group_key, train_seeds
from .train import RunResult

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("ok", "failed", "diverged")
FINISHED = ("ok", "diverged")          # stored outcomes a rerun never repeats
GRID_KEYS = ("base", "axes")
RECORD_NAME = re.compile(r"^[0-9a-f]{64}\.json$")
CLAIM_POLL_S = 1.0                     # how often a sweep looks at runs another sweep is computing
SEED_BATCH = 10                        # most seeds of one configuration trained together
# The main job's run store, shared by its chapters: a run that several chapters read is trained once.
RUN_STORE_ENV = "VQSTUDY_RUN_STORE"


def shared_store() -> str | None:
    """The run store that ``$VQSTUDY_RUN_STORE`` names for every sweep of this process, or None (unset, blank)."""
    return os.environ.get(RUN_STORE_ENV, "").strip() or None


class SweepError(RuntimeError):
    """Some requested runs have no usable result (failed or never stored)."""


# --- grids ----------------------------------------------------------------------------------------

def config_key(config: RunConfig) -> str:
    """The store key of a config: equal configs share it on every machine and in every session."""
    return _digest(config.to_dict())


def _digest(config_dict: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config_dict, sort_keys=True).encode()).hexdigest()


def _axis_target(axis: Any) -> tuple[str, str]:
    """(section, field) of a dotted axis name; unknown names fail before any work."""
    if not isinstance(axis, str) or axis.count(".") != 1:
        raise ValueError(f"invalid grid axis {axis!r}: expected 'section.field', e.g. 'train.seed'")
    section, name = axis.split(".")
    cls = RunConfig.SECTIONS.get(section)
    if cls is None:
        raise ValueError(f"unknown grid axis {axis!r}: no section {section!r}; "
                         f"sections are {', '.join(RunConfig.SECTIONS)}")
    names = [f.name for f in fields(cls)]
    if name not in names:
        raise ValueError(f"unknown grid axis {axis!r}: {section} has no field {name!r}; "
                         f"fields are {', '.join(names)}")
    return section, name


def _axis_values(axis: str, values: Any) -> list:
    """An axis's values: a non-empty list without repeats (a repeat would run one config twice)."""
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"invalid grid axis {axis!r}: expected a list of values, "
                         f"got {type(values).__name__} {values!r}")
    if not values:
        raise ValueError(f"invalid grid axis {axis!r}: the list is empty; give at least one value")
    seen: set[str] = set()
    for value in values:
        token = json.dumps(value, sort_keys=True, default=repr)
        if token in seen:
            raise ValueError(f"invalid grid axis {axis!r}: value {value!r} is listed twice")
        seen.add(token)
    return list(values)


def _blame(point: dict[str, Any], message: str) -> dict[str, Any]:
    """The axes a config error names (all of the point when it names none)."""
    named = {a: v for a, v in point.items() if re.search(rf"(?<![\w.]){re.escape(a)}(?!\w)", message)}
    return named or point


def _yaml_hint(values: Iterable[Any]) -> str:
    """YAML 1.1 reads ``1e-3`` as a string; say so, as that is the usual cause."""
    for value in values:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                float(value)
                return f" (YAML read {value!r} as a string: write numbers like 1.0e-3)"
    return ""


def _grid_point(base: RunConfig, targets: dict[str, tuple[str, str]], point: dict[str, Any]) -> RunConfig:
    changes: dict[str, dict[str, Any]] = {}
    for axis, value in point.items():
        section, name = targets[axis]
        changes.setdefault(section, {})[name] = value
    try:
        config = base.replace(**changes)
        config_key(config)  # values must be JSON to be stored
    except (ValueError, TypeError) as exc:
        blamed = _blame(point, str(exc))
        where = ", ".join(f"{a}={v!r}" for a, v in blamed.items())
        raise ValueError(f"invalid grid axis value {where}: {exc}{_yaml_hint(blamed.values())}") from None
    return config


def expand_grid(base: RunConfig, axes: Mapping[str, Sequence[Any]]) -> list[RunConfig]:
    """Every combination of the axes applied to ``base``, validated before anything runs.

    Order is stable: axes in the given order, the last one varying fastest.
    """
    if not isinstance(base, RunConfig):
        raise ValueError(f"invalid grid base: expected a RunConfig, got {type(base).__name__}")
    if not isinstance(axes, Mapping):
        raise ValueError(f"invalid grid axes: expected a mapping of 'section.field' to lists, "
                         f"got {type(axes).__name__}")
    targets = {axis: _axis_target(axis) for axis in axes}
    values = [_axis_values(axis, axes[axis]) for axis in axes]
    return [_grid_point(base, targets, dict(zip(axes, combo))) for combo in itertools.product(*values)]


def load_grid(path: str | Path) -> list[RunConfig]:
    """The configs of a YAML grid: ``base:`` (a partial RunConfig dict) and ``axes:`` (dotted name -> list)."""
    path = Path(path)
    data = read_yaml(path, "grid file")
    if not isinstance(data, dict):
        raise ValueError(f"grid file {path}: expected a mapping with 'base:' and/or 'axes:', "
                         f"got {type(data).__name__}")
    unknown = sorted(map(str, set(data) - set(GRID_KEYS)))
    if unknown:
        raise ValueError(f"grid file {path}: unknown key(s) {', '.join(unknown)}; allowed keys are base, axes")
    try:
        base = RunConfig.from_dict(data.get("base", {}))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"grid file {path}: invalid base: {exc}") from None
    try:
        return expand_grid(base, data.get("axes", {}))
    except ValueError as exc:
        raise ValueError(f"grid file {path}: {exc}") from None


# --- the store ------------------------------------------------------------------------------------

def _store_path(store_dir: str | Path) -> Path:
    store = Path(store_dir)
    if store.exists() and not store.is_dir():
        raise ValueError(f"results store {store} exists and is not a folder")
    return store


def _record_path(store: Path, key: str) -> Path:
    return store / f"{key}.json"


def _record_problem(record: Any, key: str) -> str | None:
    """Why a parsed file is not a usable record of ``key`` (None when it is)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("key") != key:
        return f"its key {record.get('key')!r} does not match the file name"
    if record.get("status") not in STATUSES:
        return f"unknown status {record.get('status')!r}"
    if not isinstance(record.get("config"), dict) or _digest(record["config"]) != key:
        return "its config does not hash to its key"
    if record["status"] in FINISHED and not isinstance(record.get("result"), dict):
        return "a finished run without a result"
    return None


def _claim_path(store: Path, key: str) -> Path:
    return store / f"{key}.claim"


def read_record(path: str | Path) -> dict[str, Any] | None:
    """A stored record, or None when missing or unusable: corrupt files warn and are rerun, never returned."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = read_json(path, "sweep record")
    except FileFormatError as exc:   # truncated, or bytes that are not UTF-8
        problem: str | None = f"invalid {exc.kind} ({exc.detail})"
    else:
        problem = _record_problem(record, path.stem)
    if problem:
        warnings.warn(f"ignoring corrupt sweep record {path}: {problem}; it counts as not run", stacklevel=2)
        return None
    return record


def _write_record(store: Path, record: dict[str, Any]) -> None:
    write_atomic(_record_path(store, record["key"]), json.dumps(record, sort_keys=True))


def _iter_records(store: Path) -> Iterator[dict[str, Any]]:
    """Every usable record; temp files and other files in the folder are not records."""
    for path in sorted(store.iterdir()):
        if RECORD_NAME.match(path.name):
            record = read_record(path)
            if record is not None:
                yield record


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {"key": record["key"], "status": record["status"], "reason": record.get("reason")}
    row.update({f"{section}.{name}": value for section, values in record["config"].items()
                for name, value in values.items()})
    if record.get("result"):
        row.update(scalar_metrics(record["result"]["final"]))
    return row


def results_table(store_dir: str | Path) -> "pd.DataFrame":
    """One row per stored run: key, status, reason, dotted config columns and final scalar metrics."""
    import pandas as pd

    store = _store_path(store_dir)
    if not store.is_dir():
        raise ValueError(f"no results store at {store}")
    rows = [_row(record) for record in _iter_records(store)]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["key", "status", "reason"])


def load_runs(configs: Iterable[RunConfig], store_dir: str | Path) -> list[RunResult]:
    """The stored RunResults of ``configs``, in their order (without model/dataset: retrain for those)."""
    store = _store_path(store_dir)
    results, problems = [], []
    for config in configs:
        key = config_key(config)
        record = read_record(_record_path(store, key))
        if record is None or record["status"] == "failed":
            problems.append(f"{key[:12]}: " + (str(record.get("reason")) if record else "no stored result"))
        else:
            results.append(RunResult.from_dict(record["result"]))
    if problems:
        raise SweepError(f"{len(problems)} run(s) without a result: " + "; ".join(problems))
    return results


# --- running --------------------------------------------------------------------------------------

def _failure(exc: BaseException) -> dict[str, Any]:
    """A failed outcome: the exception and where it was raised, plus the full traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}{where}",
            "traceback": "".join(traceback.format_exception(exc)), "result": None}


def _execute(config_dicts: list[dict[str, Any]], pinned: bool = False) -> list[dict[str, Any]]:
    """Train a seed batch (configs that differ only in their seed) wherever the executor put it.

    Never raises, so one bad run stops no other: each config gets an outcome. Batching changes no
    stored number (:mod:`vqstudy.seedbatch`), so a record does not say which batch computed it.
    ``pinned``: the sweep was started under the reproducible numerics, so a worker computing without
    them (a Dask worker started without ``VQSTUDY_REPRODUCIBLE=1``) records a failure instead of
    storing numbers that differ from everyone else's.
    """
    if pinned and not numerics.active():
        return [_failure(numerics.NumericsError(
            "this worker does not compute under the reproducible numerics the sweep was started with: start "
            f"it with {numerics.ENV_FLAG}=1 in its environment (e.g. {numerics.ENV_FLAG}=1 dask worker ...)"))
            for _ in config_dicts]
    try:
        results = train_seeds([RunConfig.from_dict(c) for c in config_dicts], progress=False)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, not raised
        return [_failure(exc) for _ in config_dicts]
    return [{"status": r.status, "reason": r.reason, "result": r.to_dict()} for r in results]


def seed_batches(configs: Mapping[str, RunConfig], workers: int) -> list[list[str]]:
    """Keys of ``configs`` grouped into seed batches: configs that differ only in ``train.seed``, at most
    :data:`SEED_BATCH` per batch, and split so that a lone group still keeps ``workers`` processes busy.

    Configs that cannot be batched (:func:`vqstudy.seedbatch.batch_problem`, e.g. the conv models) run one
    per job: a batch of them would only train one after another and store nothing until the last is done.
    """
    groups: dict[str, list[str]] = {}
    for key, config in configs.items():
        groups.setdefault(seed_group_key(config), []).append(key)
    batches = []
    for keys in groups.values():
        if batch_problem(configs[keys[0]]) is not None:
            batches += [[key] for key in keys]
            continue
        size = min(SEED_BATCH, max(1, -(-len(keys) // max(1, workers))))
        batches += [keys[i:i + size] for i in range(0, len(keys), size)]
    return batches


def _future_outcomes(future: cf.Future, size: int) -> list[dict[str, Any]]:
    """The outcomes of a seed batch's future; an executor-level error (a dead worker, a lost scheduler) is
    marked ``unstored``: it says nothing about the configs, so it must not stop a plain resume from retrying."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001
        return [{**_failure(exc), "unstored": True} for _ in range(size)]


def _check_configs(configs: Iterable[RunConfig]) -> list[RunConfig]:
    if isinstance(configs, RunConfig):
        raise TypeError("configs must be a list of RunConfig, got one RunConfig: wrap it in a list")
    configs = list(configs)
    bad = [type(c).__name__ for c in configs if not isinstance(c, RunConfig)]
    if bad:
        raise TypeError(f"configs must all be RunConfig, got {', '.join(sorted(set(bad)))}")
    return configs


def _needs_run(store: Path, key: str, rerun_failed: bool, since: float) -> bool:
    """No usable record, or (``rerun_failed``) a failed one written before this sweep began (``since``,
    wall clock): a failure another sweep stored meanwhile is that sweep's retry, not one to repeat."""
    path = _record_path(store, key)
    record = read_record(path)
    if record is None:
        return True
    if record["status"] != "failed" or not rerun_failed:
        return False
    with contextlib.suppress(FileNotFoundError):
        return path.stat().st_mtime < since
    return True


def _plan(store: Path, configs: list[RunConfig], rerun_failed: bool,
          since: float) -> tuple[dict[str, RunConfig], int]:
    """The unique configs still to run, and how many are skipped because their record exists."""
    unique = {config_key(c): c for c in configs}
    todo = {key: config for key, config in unique.items() if _needs_run(store, key, rerun_failed, since)}
    return todo, len(unique) - len(todo)


def _claimed(store: Path, waiting: dict[str, RunConfig], claims: ClaimSet, busy: dict[str, RunConfig],
             stored_meanwhile: list[str], rerun_failed: bool, since: float,
             workers: int) -> Iterator[tuple[tuple[str, ...], tuple]]:
    """The seed batches of ``waiting`` this sweep claims, each claimed only when the executor takes it.

    Runs another live sweep holds go to ``busy``; runs another sweep stored
    meanwhile go to ``stored_meanwhile``.
    """
    for batch in seed_batches(waiting, workers):
        mine = []
        for key in batch:
            claim = _claim_path(store, key)
            if not claims.take(claim):
                busy[key] = waiting[key]
                continue
            with warnings.catch_warnings():   # a corrupt record was warned about when the sweep was planned
                warnings.simplefilter("ignore")
                needed = _needs_run(store, key, rerun_failed, since)
            if needed:
                mine.append(key)
            else:                             # another sweep stored it between the plan and this claim
                claims.release(claim)
                stored_meanwhile.append(key)
        if mine:
            yield tuple(mine), ([waiting[key].to_dict() for key in mine],)


def code_version() -> dict[str, str]:
    """The code that ran a sweep, stored in each record."""
    return {"vqstudy": __version__, "git_revision": git_revision()}


@dataclass
class SweepSummary:
    """What one :func:`run_sweep` call did; ``str()`` is its one-line summary."""
    store_dir: Path
    keys: list[str]            # the store key of each config, in config order
    done: int                  # runs trained now that finished (ok or diverged)
    skipped: int               # runs already stored
    failed: int                # runs trained now that raised
    diverged: int              # of ``done``, how many diverged
    seconds: float
    statuses: dict[str, str] = field(default_factory=dict)  # key -> status of runs trained now

    def __str__(self) -> str:
        return f"sweep: {self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s"


def run_sweep(configs: Iterable[RunConfig], store_dir: str | Path, executor: ExecutorSpec = None,
              workers: int | None = None, rerun_failed: bool = False,
              progress: bool | None = None, claim_timeout: float = CLAIM_STALE_S) -> SweepSummary:
    """Run every config not yet stored in ``store_dir``, writing one record per run as it finishes.

    ``executor``: None for the Dask cluster named by ``$VQSTUDY_SCHEDULER`` if
    set, else a local spawn process pool of ``workers`` processes
    (default min(2, cpu count)), ``"inline"`` for this process, or any
    ``concurrent.futures.Executor``. Failed runs are skipped too unless
    ``rerun_failed``; an executor that fails (a worker killed) is counted as
    failed but not stored, so the next call retries it. ``progress``: None
    shows a bar on a terminal and prints the summary line to stderr; False
    shows neither (e.g. under nbval). The process pool uses "spawn": a script
    that calls this needs the ``if __name__ == "__main__":`` guard; a worker
    that dies is replaced and only its run is retried (see
    :func:`vqstudy.executors.run_jobs`).

    Each run is claimed before it starts; a run another sweep has claimed is
    waited for (its record counts as skipped here), unless its claim is stale:
    its owner's process is gone on this host, or the claim was not refreshed
    for ``claim_timeout`` seconds. Temporary files of killed writes older
    than an hour are removed from the store.
    """
    configs = _check_configs(configs)
    workers = check_workers(workers, executor)
    if executor is None:
        default_scheduler()  # a bad $VQSTUDY_SCHEDULER fails before anything is written
    store = _store_path(store_dir)
    started, since = time.perf_counter(), time.time()
    store.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(store)
    todo, skipped = _plan(store, configs, rerun_failed, since)
    statuses: dict[str, str] = {}
    if todo:
        version = code_version()
        with ClaimSet(claim_timeout) as claims, tqdm(total=len(todo), desc="sweep", unit="run", leave=False,
                                                     disable=None if progress is None else not progress) as bar:
            waiting = todo
            while waiting:
                busy: dict[str, RunConfig] = {}
                stored_meanwhile: list[str] = []
                jobs = _claimed(store, waiting, claims, busy, stored_meanwhile, rerun_failed, since, workers)
                task = functools.partial(_execute, pinned=numerics.active())
                for keys, future in run_jobs(task, jobs, executor, workers):
                    for key, outcome in zip(keys, _future_outcomes(future, len(keys))):
                        statuses[key] = outcome["status"]
                        if outcome.pop("unstored", False):
                            warnings.warn(f"run {key[:12]} not stored, the executor failed: {outcome['reason']}",
                                          stacklevel=2)
                        else:
                            _write_record(store, {"key": key, "config": todo[key].to_dict(),
                                                  "code_version": version, **outcome})
                        claims.release(_claim_path(store, key))
                        bar.update(1)
                skipped += len(stored_meanwhile)
                bar.update(len(stored_meanwhile))
                waiting = busy
                if waiting:
                    time.sleep(CLAIM_POLL_S)
    counts = Counter(statuses.values())
    summary = SweepSummary(store, [config_key(c) for c in configs], counts["ok"] + counts["diverged"], skipped,
                           counts["failed"], counts["diverged"], time.perf_counter() - started, statuses)
    if progress is not False:
        print(summary, file=sys.stderr, flush=True)
    return summary


def sweep(configs: Iterable[RunConfig], store_dir: str | Path | None = None, executor: ExecutorSpec = None,
          workers: int | None = None, rerun_failed: bool = False, progress: bool | None = None) -> list[RunResult]:
    """Run ``configs`` and return their RunResults in order; raises SweepError if any failed.

    With ``store_dir=None`` the runs go to the store named by ``$VQSTUDY_RUN_STORE``
    when it is set (the main job sets it to a folder of its own for the time it
    runs, so chapters that read the same run train it once), else every call
    recomputes in a throwaway store, so a notebook never passes on stale
    results; pass a folder to opt into reuse.
    """
    configs = _check_configs(configs)
    if store_dir is None:
        store_dir = shared_store()
    if store_dir is None:
        with tempfile.TemporaryDirectory(prefix="vqstudy-sweep-") as tmp:
            return sweep(configs, tmp, executor, workers, rerun_failed, progress)
    run_sweep(configs, store_dir, executor, workers, rerun_failed, progress)
    return load_runs(configs, store_dir)


# --- command line ---------------------------------------------------------------------------------

def _scheduler_arg(text: str) -> str:
    try:
        return check_scheduler_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vqstudy sweep``."""
    parser.add_argument("grid", metavar="GRID.yaml", help="YAML grid: base (partial run config) and axes")
    parser.add_argument("--out", required=True, metavar="DIR", help="results store (one JSON record per run)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, help="local worker processes (default min(2, cores))")
    where.add_argument("--scheduler", type=_scheduler_arg, metavar="tcp://HOST:PORT",
                       help="run on this Dask scheduler instead of local processes")
    parser.add_argument("--rerun-failed", action="store_true", help="retry runs stored as failed")


def command(args: argparse.Namespace) -> int:
    """Run a YAML grid of configs into a resumable results store (locally or on Dask)."""
    configs = load_grid(args.grid)
    store = _store_path(args.out)
    executor = dask_executor(args.scheduler) if args.scheduler else contextlib.nullcontext(None)
    with executor as ex:
        summary = run_sweep(configs, store, executor=ex, workers=args.workers, rerun_failed=args.rerun_failed)
    return 1 if summary.failed else 0
