"""The claims registry: each claim's primary tests and the one verdict rule, fixed before the runs they judge.

A claim of the paper is judged by one or two *primary tests*, written down
here before any chapter runs them: the metric, the two arms compared seed by
seed (same seeds, paired), the scale of the comparison (a ratio, analysed on
the log scale, or a difference), and the minimum effect that counts, chosen
from the paper's own numbers or, where it gives none, stated with its reason.
Everything else a chapter measures is a *secondary* measurement: reported,
never voting.

The rule, the same for every claim of the book:

- each primary test gets the paired effect per seed and a two-sided 95%
  Student-t interval over the seeds (at least ten);
- the test *holds* when the whole interval lies on the paper's side of the
  minimum effect, *fails* when the whole interval lies on the other side
  (the effect is demonstrably smaller than what counts, or reversed), and is
  *undecided* otherwise;
- a claim is **reproduced** when all its primary tests hold, **not reproduced**
  when any fails, **inconclusive** otherwise, and **not testable here** when a
  test needs what this study does not have;
- its **stability** is the share of bootstrap resamples of the seeds (the
  same resample for all tests of the claim) that give the same verdict: 1.0 is
  a verdict no seed decides, 0.5 a knife edge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

VERDICTS = ("reproduced", "inconclusive", "not reproduced", "not testable here")
CONFIDENCE = 0.95
MIN_SEEDS = 10
STABILITY_RESAMPLES = 2000
STABILITY_SEED = 20241125  # fixed: the stability of a stored verdict is itself reproducible
SCALES = ("ratio", "difference")
SIDES = ("below", "above")


@dataclass(frozen=True)
class PrimaryTest:
    """One pre-registered comparison: ``treatment`` against ``control`` on ``metric``, seed by seed.

    The effect per seed is treatment / control (``scale='ratio'``) or
    treatment - control (``'difference'``); the paper's claim is that it lies
    ``side`` ('below' or 'above') ``threshold``.
    """
    claim: str
    key: str
    chapter: str
    metric: str
    treatment: str
    control: str
    scale: str
    side: str
    threshold: float
    paper: str
    why: str

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"invalid scale={self.scale!r} for {self.key}: allowed values are {SCALES}")
        if self.side not in SIDES:
            raise ValueError(f"invalid side={self.side!r} for {self.key}: allowed values are {SIDES}")
        if self.scale == "ratio" and not self.threshold > 0:
            raise ValueError(f"{self.key}: a ratio threshold must be > 0, got {self.threshold!r}")

    @property
    def statement(self) -> str:
        op = "/" if self.scale == "ratio" else "-"
        return f"{self.metric}: {self.treatment} {op} {self.control} {self.side} {self.threshold:g}"


SHRUNK_SYNTH = "k-means on untrained encoder, joint"
DEFERRED_SYNTH = "deferred: k-means on trained encoder"
SHRUNK_MNIST = "k-means on untrained encoder, joint"
DEFERRED_MNIST = "deferred quantization"

REGISTRY: tuple[PrimaryTest, ...] = (
    PrimaryTest("C1", "C1-normal", "02_tokens_collapse", "perplexity", "normal(1e-3), joint", DEFERRED_SYNTH,
                "ratio", "below", 0.5, "2024 abstract: few codes used, perplexity << K",
                "'far fewer codes' read as at most half the effective codes of a healthy codebook"),
    PrimaryTest("C1", "C1-uniform", "02_tokens_collapse", "perplexity", "uniform(1/K), joint", DEFERRED_SYNTH,
                "ratio", "below", 0.5, "2024 abstract; uniform(±1/K) is the VQGAN/taming init",
                "the second small-scale init the field uses; same threshold as C1-normal"),
    PrimaryTest("C2", "C2-cosine", "02_tokens_collapse", "codebook centered cosine spread", SHRUNK_SYNTH,
                DEFERRED_SYNTH, "ratio", "below", 0.9,
                "Table 1: cosine 0.67 vs 0.94 (MaskGIT), 0.64 vs 0.97 (VAR): ratios 0.66-0.71",
                "the paper's spread is a cosine between codes; centred on the embeddings' mean so that it "
                "measures directions within the data, not from an arbitrary origin; 10% lower counts"),
    PrimaryTest("C3", "C3-modes", "01_synthetic_data", "distinguishable modes (silhouette)", "untrained encoder",
                "trained encoder", "difference", "below", -1.0, "2025 Fig. 2b: untrained outputs in fewer modes",
                "at least one mode fewer of the 10 clusters"),
    PrimaryTest("C4", "C4-width", "03_embeddings_collapse", "latent effective dimension", "width 4, deferred",
                "width 128, deferred", "ratio", "below", 0.75, "2024 abstract: limited capacity collapses embeddings",
                "under deferred training, so that tokens collapse does not confound capacity; a quarter fewer dims"),
    PrimaryTest("C4", "C4-fix", "03_embeddings_collapse", "latent effective dimension",
                "width 4, deferred + dead-code restart", "width 128, deferred", "ratio", "below", 0.75,
                "2024 abstract: codebook fixes alone do not undo it",
                "the strongest codebook-side fix on the narrow encoder still below the wide encoder"),
    PrimaryTest("C5", "C5-growth", "09_real_images", "perplexity ratio shrunk/deferred", "largest K",
                "smallest K", "ratio", "below", 0.5,
                "2025 Fig. 4: the gap opens with K (plateau after 2^13 on CIFAR-10)",
                "the shrunk/deferred perplexity ratio at the largest K at most half that at the smallest K"),
    PrimaryTest("C6", "C6-mse", "09_real_images", "reconstruction MSE", SHRUNK_MNIST, DEFERRED_MNIST, "ratio",
                "below", 1.25, "Table 1: MSE x1.19 (MaskGIT), x1.17 (VAR) while perplexity drops x5.7, x2.5",
                "'nearly unchanged' read as at most 25% more error"),
    PrimaryTest("C6", "C6-perplexity", "09_real_images", "perplexity", SHRUNK_MNIST, DEFERRED_MNIST, "ratio",
                "below", 1 / 3, "Table 1: perplexity 924.6 vs 5311.9 (x5.7)",
                "the shrinkage must be large (at least threefold) for 'deceptively strong' to mean anything"),
    PrimaryTest("C7", "C7-diversity", "06_generation_diversity", "mean pairwise pixel distance of samples",
                "shrunk tokenizer", "healthy tokenizer", "ratio", "below", 49.01 / 49.83,
                "Tables 2-3: 75.89 vs 80.77, 70.69 vs 75.92, 49.01 vs 49.83",
                "a drop at least as large as the smallest the paper reports (ODIR, -1.6%)"),
    PrimaryTest("C8", "C8-perplexity", "04_fixes", "perplexity", DEFERRED_SYNTH, SHRUNK_SYNTH, "ratio", "above",
                2.0, "2026 abstract: deferred quantization fixes the collapse",
                "deferred at least doubles the effective codes of the shrunk baseline"),
    PrimaryTest("C8", "C8-mse", "04_fixes", "reconstruction MSE", DEFERRED_SYNTH, SHRUNK_SYNTH, "ratio", "below",
                1.05, "2026 abstract: keeps reconstruction",
                "non-inferiority: at most 5% more reconstruction error than the baseline"),
    PrimaryTest("C9", "C9-warmup", "03_embeddings_collapse", "latent effective dimension", "AE warm-up, then VQ",
                "joint VQ", "difference", "above", 1.0, "2605.06870: 3-5 -> 17-19 dims on VQGAN",
                "at least one more effective dimension at the end of training"),
)
CLAIM_IDS = tuple(dict.fromkeys(t.claim for t in REGISTRY))
# One line per claim, as a chapter's verdict states it (the paper's full wording is on the claims page).
CLAIM_STATEMENTS = {
    "C1": "a small-scale random codebook init trained jointly uses far fewer codes than a healthy codebook",
    "C2": "k-means on an untrained encoder bunches the codes in a narrow region",
    "C3": "an untrained encoder's outputs fall into fewer distinguishable modes than a trained encoder's",
    "C4": "low encoder capacity collapses the embeddings, and codebook fixes alone do not undo it",
    "C5": "the shrinkage grows with the codebook size K",
    "C6": "a shrunk codebook coexists with nearly unchanged reconstructions",
    "C7": "a generator trained on a shrunk tokenizer's tokens is less diverse",
    "C8": "deferred quantization fixes the collapse and keeps reconstruction",
    "C9": "an autoencoder warm-up raises the embeddings' effective dimension after VQ training",
}


def _number(value: float) -> str:
    """Three significant digits, no scientific notation for the ranges effects take here."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g}" if abs(value) >= 1 else f"{value:.2g}"
    return f"{value:.2e}"


def describe_test(test: Mapping[str, object]) -> str:
    """One line for a judged primary test (as a chapter records it): the effect, its interval, the rule."""
    op = "/" if test["scale"] == "ratio" else "−"
    return (f"{test['metric']}: {test['treatment']} {op} {test['control']} = {_number(test['effect'])} "
            f"[95% CI {_number(test['low'])}, {_number(test['high'])}] over {len(test['seeds'])} seeds; "
            f"the paper's side: {test['side']} {_number(test['threshold'])} → {test['outcome']}")


def primary_tests(claim: str) -> tuple[PrimaryTest, ...]:
    """The primary tests of ``claim`` (ValueError for an unknown claim)."""
    found = tuple(t for t in REGISTRY if t.claim == claim)
    if not found:
        raise ValueError(f"invalid claim={claim!r}: allowed values are {', '.join(CLAIM_IDS)}")
    return found


@dataclass(frozen=True)
class PrimaryResult:
    test: PrimaryTest
    seeds: tuple[int, ...]
    effect: float                 # ratio (geometric mean) or mean difference over the seeds
    interval: tuple[float, float]
    outcome: str                  # 'holds', 'fails', 'undecided'


def _paired_effects(test: PrimaryTest, treatment: Mapping[int, float], control: Mapping[int, float],
                    min_seeds: int) -> tuple[tuple[int, ...], np.ndarray]:
    return _effects_by_seed(test.key, test.scale, treatment, control, min_seeds, f" of {test.metric}")


def _effects_by_seed(label: str, scale: str, treatment: Mapping[int, float], control: Mapping[int, float],
                     min_seeds: int, what: str = "") -> tuple[tuple[int, ...], np.ndarray]:
    """(seeds, per-seed effects): log ratios or differences of paired values, for primary and secondary
    comparisons alike; ``label`` prefixes every error."""
    if set(treatment) != set(control):
        raise ValueError(f"{label}: treatment and control must have the same seeds, got "
                         f"{sorted(treatment)} and {sorted(control)}")
    seeds = tuple(sorted(treatment))
    if len(seeds) < min_seeds:
        raise ValueError(f"{label}: {len(seeds)} seeds given, the rule needs at least {min_seeds}")
    t = np.array([treatment[s] for s in seeds], dtype=float)
    c = np.array([control[s] for s in seeds], dtype=float)
    if not (np.isfinite(t).all() and np.isfinite(c).all()):
        raise ValueError(f"{label}: non-finite values (a diverged run?) cannot be judged")
    if scale == "ratio":
        if (t <= 0).any() or (c <= 0).any():
            raise ValueError(f"{label}: a ratio needs positive values{what}")
        return seeds, np.log(t) - np.log(c)
    return seeds, t - c


def _t_interval(effects: np.ndarray) -> tuple[float, float, float]:
    mean = float(effects.mean())
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(effects) - 1) * effects.std(ddof=1)
                 / math.sqrt(len(effects)))
    return mean, mean - half, mean + half


def _outcome(test: PrimaryTest, low: float, high: float) -> str:
    bound = math.log(test.threshold) if test.scale == "ratio" else test.threshold
    inside, outside = (high < bound, low >= bound) if test.side == "below" else (low > bound, high <= bound)
    return "holds" if inside else ("fails" if outside else "undecided")


def judge_test(test: PrimaryTest, treatment: Mapping[int, float], control: Mapping[int, float],
               min_seeds: int = MIN_SEEDS) -> PrimaryResult:
    """The paired effect of one primary test, its 95% interval and whether it holds."""
    seeds, effects = _paired_effects(test, treatment, control, min_seeds)
    mean, low, high = _t_interval(effects)
    back = math.exp if test.scale == "ratio" else float
    return PrimaryResult(test, seeds, back(mean), (back(low), back(high)), _outcome(test, low, high))


def paired_effect(treatment: Mapping[int, float], control: Mapping[int, float],
                  scale: str = "ratio") -> tuple[float, float, float]:
    """The book's statistic for a *secondary* comparison: (effect, low, high) over the shared seeds.

    The same paired effect and 95% Student-t interval as a primary test (a ratio as the geometric mean
    of the per-seed ratios, a difference as the mean difference), without a threshold or a verdict, so
    that a chapter states its secondary findings (chapter 4: EMA + restart against deferred; chapter 5:
    shrunk against deferred perplexity per K) on the primary tests' footing. Needs at least two seeds.
    """
    if scale not in SCALES:
        raise ValueError(f"invalid scale={scale!r}: allowed values are {SCALES}")
    if len(treatment) < 2:
        raise ValueError(f"an interval needs at least 2 seeds, got {len(treatment)}")
    effects = _effects_by_seed("paired effect", scale, treatment, control, min_seeds=2)[1]
    if scale == "ratio":
        return tuple(math.exp(v) for v in _t_interval(effects))  # type: ignore[return-value]
    return _t_interval(effects)


def side_of(effect: Sequence[float], bound: float = 1.0) -> str:
    """Where the interval of a :func:`paired_effect` lies relative to ``bound``: 'below', 'above' or
    'includes' (chapter 5 words its secondary findings by it, so the prose follows the run)."""
    if len(effect) != 3:
        raise ValueError(f"effect must be (effect, low, high), got {effect!r}")
    _, low, high = effect
    return "below" if high < bound else "above" if low > bound else "includes"


def combine(outcomes: Sequence[str]) -> str:
    """The claim's verdict from its primary tests' outcomes."""
    if outcomes and all(o == "holds" for o in outcomes):
        return "reproduced"
    return "not reproduced" if "fails" in outcomes else "inconclusive"


@dataclass(frozen=True)
class ClaimVerdict:
    claim: str
    verdict: str
    stability: float | None
    tests: tuple[PrimaryResult, ...]
    reason: str = ""


def judge_claim(claim: str, values: Mapping[str, tuple[Mapping[int, float], Mapping[int, float]]],
                min_seeds: int = MIN_SEEDS) -> ClaimVerdict:
    """Judge ``claim`` from ``values[test.key] = (treatment by seed, control by seed)`` for each primary test."""
    tests = primary_tests(claim)
    missing = [t.key for t in tests if t.key not in values]
    if missing:
        raise ValueError(f"{claim}: no values for primary test(s) {', '.join(missing)}")
    results = tuple(judge_test(t, *values[t.key], min_seeds=min_seeds) for t in tests)
    verdict = combine([r.outcome for r in results])
    return ClaimVerdict(claim, verdict, _stability(tests, values, results, verdict), results)


def _stability(tests: Sequence[PrimaryTest], values, results: Sequence[PrimaryResult], verdict: str) -> float:
    """Share of bootstrap resamples of the seeds that give ``verdict`` again."""
    seeds = results[0].seeds
    if any(r.seeds != seeds for r in results):
        return float("nan")  # tests on different seed sets cannot be resampled jointly
    n = len(seeds)
    picks = np.random.default_rng(STABILITY_SEED).integers(0, n, (STABILITY_RESAMPLES, n))
    t_crit = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)
    outcomes = []
    for test in tests:
        sample = _paired_effects(test, *values[test.key], min_seeds=2)[1][picks]
        mean = sample.mean(axis=1)
        half = t_crit * sample.std(axis=1, ddof=1) / math.sqrt(n)
        outcomes.append([_outcome(test, lo, hi) for lo, hi in zip(mean - half, mean + half)])
    same = sum(combine(list(row)) == verdict for row in zip(*outcomes))
    return same / STABILITY_RESAMPLES


def not_testable(claim: str, reason: str) -> ClaimVerdict:
    """A claim this study cannot test (say why: the data, scale or model it needs)."""
    primary_tests(claim)
    return ClaimVerdict(claim, "not testable here", None, (), reason)
