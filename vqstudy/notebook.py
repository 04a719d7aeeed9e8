"""What every chapter notebook shares: its parameter model, set-up, claim verdicts, results files.

A chapter declares its papermill parameters once, as a :class:`Parameters`
subclass in its module of :mod:`vqstudy.chapters` (defaults, the check of
each, the full profile's presets), and its notebook validates them in one
call (:meth:`Parameters.from_notebook`), so a bad value stops the notebook
at once with a message naming the parameter and the allowed values. It then
calls :func:`setup` and ends with a :class:`Claims` object that prints a
verdict per claim and writes ``results/<chapter>.json`` for the book's
paper-vs-ours table.
"""
from __future__ import annotations

import math
import numbers
import os
import time
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from . import claims as registry
from .claims import VERDICTS
from .repro import environment, make_deterministic
from .results import VOLATILE_FIELDS, Verdict, build_record, results_path, write_results  # noqa: F401

PROFILES = ("quick", "full")
RESULTS_ENV = "VQSTUDY_RESULTS_DIR"


def results_dir(start: Path | None = None) -> Path:
    """Where a chapter writes its results file.

    ``$VQSTUDY_RESULTS_DIR`` when set (the tests point it at a temporary
    folder); else ``results/`` of the book the chapter runs in, found by
    walking up from the working directory to the folder holding
    ``_config.yml`` and ``notebooks/``; else ``./results``. Never the folder
    the package is installed in: a second clone, or a plain ``pip install``,
    must not write into someone else's results.
    """
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    return book_path("results", start)


def book_path(relative: str, start: Path | None = None) -> Path:
    """``relative`` inside the book the chapter runs in (the folder holding ``_config.yml`` and
    ``notebooks/``, found from the working directory), else inside the working directory."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder / relative
    return here / relative


class ParameterError(ValueError):
    """An invalid chapter parameter (raised by the ``check_*`` functions).

    In a notebook its traceback is its message alone (IPython's
    ``_render_traceback_``), so under Jupyter or ``papermill -p profile bogus``
    the reason is the last line a reader sees, not the end of a stack of frames.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ParameterError(f"parameter {name}={value!r} is invalid: allowed values are "
                         + ", ".join(repr(a) for a in allowed))
    return value


def check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParameterError(f"parameter {name}={value!r} is invalid: expected an integer >= {low}")
    return value


def check_ints(name: str, values: Any, low: int = 0, min_len: int = 1) -> list[int]:
    """A list of distinct integers >= low with at least ``min_len`` entries (seeds, sizes, depths)."""
    if not isinstance(values, (list, tuple)) or len(values) < min_len:
        raise ParameterError(f"parameter {name}={values!r} is invalid: expected a list of at least "
                         f"{min_len} integers")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ParameterError(f"parameter {name}={values!r} is invalid: entry {v!r} is not an integer >= {low}")
    if len(set(values)) != len(values):
        raise ParameterError(f"parameter {name}={values!r} is invalid: entries must be distinct")
    return list(values)


def check_floats(name: str, values: Any, min_len: int = 1) -> list[float]:
    """A list of distinct positive numbers (init scales, ratios)."""
    if not isinstance(values, (list, tuple)) or len(values) < min_len:
        raise ParameterError(f"parameter {name}={values!r} is invalid: expected a list of at least "
                         f"{min_len} positive numbers")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ParameterError(f"parameter {name}={values!r} is invalid: entry {v!r} is not a positive number")
    if len(set(values)) != len(values):
        raise ParameterError(f"parameter {name}={values!r} is invalid: entries must be distinct")
    return [float(v) for v in values]


def check_fraction(name: str, value: Any) -> float:
    """A number strictly between 0 and 1 (a share of a step budget, a decay rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ParameterError(f"parameter {name}={value!r} is invalid: expected a number strictly between 0 and 1")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0 (a threshold, a scale)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ParameterError(f"parameter {name}={value!r} is invalid: expected a finite number > 0")
    return float(value)


def check_fractions(name: str, values: Any, min_len: int = 1) -> list[float]:
    """A list of distinct numbers strictly between 0 and 1 (warm-up shares)."""
    return [check_fraction(name, v) for v in check_floats(name, values, min_len)]


def check_sorted_ints(name: str, values: Any, **options: Any) -> list[int]:
    """:func:`check_ints`, sorted: for grids that tables and figures run over in order."""
    return sorted(check_ints(name, values, **options))


def check_sorted_fractions(name: str, values: Any, **options: Any) -> list[float]:
    """:func:`check_fractions`, sorted (a sweep of warm-up lengths)."""
    return sorted(check_fractions(name, values, **options))


def check_device(name: str, value: Any) -> str:
    """``"cpu"``, or ``"cuda"`` where a CUDA device is present."""
    check_choice(name, value, ("cpu", "cuda"))
    if value == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ParameterError(f"parameter {name}='cuda' is invalid here: no CUDA device is available; use 'cpu'")
    return value


def check_optional(name: str, value: Any, check: Callable[..., Any], **options: Any) -> Any:
    """``None`` (the profile's value), or a value ``check`` accepts."""
    return None if value is None else check(name, value, **options)


def param(default: Any, check: Callable[..., Any] | None = None, **options: Any) -> Any:
    """A field of a :class:`Parameters` model: its default and the ``check_*`` function (with options)
    that validates and normalizes it, e.g. ``seeds: list[int] = param(list(range(10)), check_ints, min_len=10)``."""
    metadata = {"check": (check, options)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


P = TypeVar("P", bound="Parameters")


@dataclass(frozen=True)
class Parameters:
    """A chapter's papermill parameters, declared once and validated once.

    Subclasses declare each parameter as a field with :func:`param` (default and check), override
    :meth:`full_profile` with what the full profile changes, and :meth:`check_relations` with checks
    between parameters. The notebook's ``parameters`` cell keeps the same names and defaults (papermill
    injects into it), and ``Parameters.from_notebook(globals())`` turns them into one validated object:
    an invalid value raises :class:`ParameterError` naming the parameter and what is allowed.
    """
    profile: str = param("quick", check_choice, allowed=PROFILES)

    def __post_init__(self) -> None:
        self._check_fields()
        self.check_relations()

    def _check_fields(self) -> None:
        """Each field through its check, which may also normalize it (a sorted list, a float)."""
        for f in fields(self):
            check, options = f.metadata.get("check", (None, {}))
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name), **options))

    def full_profile(self) -> dict[str, Any]:
        """The parameters the full profile replaces (more seeds, longer training, larger grids)."""
        return {}

    def check_relations(self) -> None:
        """Checks between parameters (raise :class:`ParameterError`); none by default."""

    def invalid(self, name: str, why: str) -> ParameterError:
        """The error for parameter ``name``, whose current value is shown, with the reason."""
        return ParameterError(f"parameter {name}={getattr(self, name)!r} is invalid: {why}")

    @classmethod
    def from_notebook(cls: type[P], namespace: Mapping[str, Any]) -> P:
        """The parameters found in a notebook's namespace (after papermill's injected cell), validated,
        with the full profile's presets applied when ``profile == "full"``."""
        values = {f.name: namespace[f.name] for f in fields(cls) if f.name in namespace}
        if check_choice("profile", values.get("profile", "quick"), PROFILES) == "full":
            values.update(cls._draft(values).full_profile())   # the presets first, then one validation
        return cls(**values)

    @classmethod
    def _draft(cls: type[P], values: Mapping[str, Any]) -> P:
        """The defaults updated by ``values``, each field checked but not the relations between them: what
        :meth:`full_profile` computes its presets from."""
        draft = object.__new__(cls)
        for f in fields(cls):
            object.__setattr__(draft, f.name, values[f.name] if f.name in values else (
                f.default_factory() if f.default_factory is not MISSING else f.default))  # type: ignore[misc]
        draft._check_fields()
        return draft

    def to_dict(self) -> dict[str, Any]:
        """The values as the chapter's results file records them."""
        return asdict(self)


@dataclass(frozen=True)
class RunParameters(Parameters):
    """The parameters of a chapter that trains: its seeds (a chapter may redeclare the default), the device
    and the worker processes (chapters 1-9)."""
    seeds: list[int] = param(list(range(10)), check_ints, low=0, min_len=1)
    device: str = param("cpu", check_device)
    workers: int = param(2, check_int)


def full_profile_work_ratio(profile: str, *factors: float) -> float:
    """How many times the quick profile's training work the full profile does: the product of the factors
    by which it multiplies the seeds, steps and grid cells (every chapter). The reproducibility page
    multiplies the quick profile's measured wall time by it, as an estimate; a full run records 1.0."""
    check_choice("profile", profile, PROFILES)
    for f in factors:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not f > 0:
            raise ParameterError(f"invalid work factor {f!r}: factors must be positive numbers")
    return 1.0 if profile == "full" else float(math.prod(factors))


def setup(seed: int = 0, threads: int = 1) -> None:
    """Deterministic torch, the book's plotting style (:mod:`vqstudy.style`), stable pandas printing."""
    import pandas as pd

    from . import style

    # tqdm.auto warns inside Jupyter when ipywidgets is absent; the chapters' progress bars are off anyway
    warnings.filterwarnings("ignore", message="IProgress not found")
    make_deterministic(seed, threads)
    style.apply()
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 100)      # printed tables wrap instead of scrolling sideways
    pd.set_option("display.max_columns", 30)


@dataclass
class Claims:
    """Collects claim checks of one chapter, prints verdicts, writes the results file."""
    chapter: str
    verdicts: list[Verdict] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def judge(self, claim: str, values: dict[str, tuple[dict[int, float], dict[int, float]]], evidence: str,
              numbers: dict[str, Any] | None = None, statement: str | None = None,
              min_seeds: int = registry.MIN_SEEDS) -> Verdict:
        """Judge ``claim`` by its pre-registered primary tests (:mod:`vqstudy.claims`) and record the verdict.

        ``values[test.key] = (treatment by seed, control by seed)`` for each primary test of the claim;
        ``evidence`` and ``numbers`` are the chapter's secondary measurements: shown, never voting.
        ``min_seeds`` below the rule's ten is for smoke runs only (the book refuses such a record).
        """
        judged = registry.judge_claim(claim, values, min_seeds=min_seeds)
        tests = [{"key": r.test.key, "statement": r.test.statement, "metric": r.test.metric,
                  "treatment": r.test.treatment, "control": r.test.control, "scale": r.test.scale,
                  "side": r.test.side, "threshold": r.test.threshold, "paper": r.test.paper,
                  "effect": r.effect, "low": r.interval[0], "high": r.interval[1], "outcome": r.outcome,
                  "seeds": list(r.seeds)} for r in judged.tests]
        v = Verdict(claim, statement or registry.CLAIM_STATEMENTS[claim], judged.verdict, evidence,
                    _plain(numbers or {}), tests, judged.stability)
        self.verdicts.append(v)
        return v

    def not_testable(self, claim: str, statement: str, why: str) -> Verdict:
        registry.primary_tests(claim)  # an unknown claim fails here
        v = Verdict(claim, statement, "not testable here", why, {})
        self.verdicts.append(v)
        return v

    def report(self) -> None:
        for v in self.verdicts:
            print(f"{v.claim}: {v.verdict.upper()} - {v.statement}")
            for test in v.primary:
                print(f"    primary: {registry.describe_test(test)}")
            if v.stability is not None:
                print(f"    stability: {v.stability:.2f} of seed resamples give the same verdict")
            print(f"    evidence: {v.evidence}")

    def show(self) -> None:
        """Display the chapter's verdicts as one admonition (HTML output, plain-text fallback)."""
        from IPython.display import display

        display(VerdictBox(self.chapter, list(self.verdicts)))

    def expect(self, expected: dict[str, str]) -> None:
        """Fail unless each claim got the verdict the chapter's prose states."""
        got: dict[str, list[str]] = {}
        for v in self.verdicts:
            got.setdefault(v.claim, []).append(v.verdict)
        for claim, want in expected.items():
            check_choice(f"expected verdict for {claim}", want, VERDICTS)
            assert claim in got, f"{claim}: no check was recorded"
            assert all(g == want for g in got[claim]), \
                f"{claim}: the prose states '{want}' but the checks gave {got[claim]}"

    def write(self, parameters: dict[str, Any], numbers: dict[str, Any] | None = None,
              directory: Path | None = None, timings: dict[str, Any] | None = None) -> Path:
        """Write ``<results dir>/<chapter>.json`` atomically (:mod:`vqstudy.results`) and return its path.

        A rerun that reproduces the same parameters, claims and numbers keeps
        the existing file (and so its record of when, where and how fast the
        numbers were first made): only a change of results rewrites it, so
        rerunning the main job leaves the tree as it was. ``timings`` (speed
        measurements, which differ between executions) are recorded beside the
        numbers but, like the wall time, do not count as a change.
        """
        path = results_path(directory or results_dir(), self.chapter)
        write_results(path, build_record(self.chapter, _plain(parameters), self.verdicts, _plain(numbers or {}),
                                         environment(), round(time.perf_counter() - self.started, 1),
                                         timings=_plain(timings) if timings else None))
        return path


BADGE_CLASSES = {"reproduced": "success", "inconclusive": "warning", "not reproduced": "danger",
                 "not testable here": "secondary"}


@dataclass
class VerdictBox:
    """The verdicts of one chapter as a reader sees them: a badge, the claim and its evidence per line."""
    chapter: str
    verdicts: list[Verdict]

    def _repr_html_(self) -> str:
        from html import escape

        items = []
        for v in self.verdicts:
            kind = BADGE_CLASSES[v.verdict]
            items.append(
                f'<li><span class="sd-badge sd-bg-{kind} sd-bg-text-{kind}">{escape(v.verdict)}</span> '
                f'<a href="../book/claims.html#claim-{v.claim.lower()}"><strong>{escape(v.claim)}</strong></a>'
                f" — {escape(v.statement)}."
                + "".join(f'<br><span class="vq-primary">{escape(registry.describe_test(t))}</span>' for t in v.primary)
                + (f'<br><span class="vq-evidence">Stability: {v.stability:.2f} of seed resamples give this verdict.'
                   '</span>' if v.stability is not None else "")
                + f'<br><span class="vq-evidence">{escape(v.evidence)}</span></li>')
        return ('<div class="admonition note vq-verdicts"><p class="admonition-title">Verdicts of this '
                f'chapter</p><ul>{"".join(items)}</ul><p class="vq-evidence">Recorded in '
                f"<code>results/{escape(self.chapter)}.json</code>; all chapters: "
                '<a href="../book/claims.html">Claims</a>.</p></div>')

    def _repr_markdown_(self) -> str:
        lines = [f"**Verdicts of this chapter** (recorded in `results/{self.chapter}.json`)", ""]
        for v in self.verdicts:
            lines.append(f"- **{v.claim}: {v.verdict}** — {v.statement}. {v.evidence}")
            lines += [f"  - {registry.describe_test(t)}" for t in v.primary]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "\n".join(f"{v.claim}: {v.verdict} - {v.statement}" for v in self.verdicts)


def _plain(obj: Any) -> Any:
    """JSON-safe copy: numpy/torch scalars to Python numbers, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def all_hold(values: Iterable[bool]) -> bool:
    values = list(values)
    return bool(values) and all(bool(v) for v in values)


GLUE_PREFIX = "application/papermill.record/"  # MyST-NB's glue format (myst_nb.ext.glue), papermill's record


def glue_text(values: dict[str, Any], digits: int = 3) -> dict[str, str]:
    """Glue each value under its name for the chapter's prose (MyST-NB: ``{glue:text}`name```), so that no
    number or verdict word in the prose is typed by hand (chapters 1 and 3).

    Numbers are formatted as the reader tables format them (:func:`vqstudy.tables.fmt_value`, ``digits``
    significant digits), anything else as ``str``. Returns the glued strings. Emits exactly what
    ``myst_nb.glue(name, text, display=False)`` emits (a test compares them) without importing MyST-NB,
    whose import pulls in nbformat's validator (seconds per chapter) and which a plain install lacks.
    """
    from IPython.display import display

    from .tables import fmt_value

    bad = [name for name in values if not isinstance(name, str) or not name.replace("_", "").isalnum()]
    if bad:
        raise ValueError(f"invalid glue name(s) {bad}: use letters, digits and underscores")
    texts = {name: fmt_value(v, digits) if isinstance(v, numbers.Real) and not isinstance(v, bool) else str(v)
             for name, v in values.items()}
    for name, text in texts.items():
        display({GLUE_PREFIX + "text/plain": repr(text)}, raw=True,
                metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}})
    return texts
