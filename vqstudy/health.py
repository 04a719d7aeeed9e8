"""Healthy / watch / collapsed: thresholds for the two collapses, derived from the study's own runs.

Each collapse is judged on scale-free numbers, so a tokenizer of any size
and latent scale can be compared with the study's:

- *tokens collapse*: ``utilization`` (share of codes used) and
  ``perplexity / K`` (the share of the codebook in effective use);
- *embeddings collapse*: ``embed_effective_dim / D`` (the share of the latent
  dimensions that hold 99% of the embeddings' variance).

**The rule.** For each number, take the stored chapter conditions that the
chapters show healthy and those they show collapsed (:data:`STUDY_CONDITIONS`,
means over the seeds in ``results/*.json``). Let *C* be the best value of
any collapsed condition and *H* the worst value of any healthy one (the
study's runs leave a gap, C < H). Split that gap in three on a log scale:
below ``C (H/C)^(1/3)`` is *collapsed*, from ``C (H/C)^(2/3)`` up is
*healthy*, the middle third is *watch*. Each stored condition thus lies a
third of the gap away from the nearest threshold. A run is *collapsed* when
any of its numbers is, *healthy* when all are, *watch* otherwise.

**The runs** (quick profile, 3 seeds each; results/*.json as committed):

- tokens collapsed: chapter 2's joint runs with a normal(1e-3), uniform(1/K)
  or k-means-on-the-untrained-encoder codebook; chapter 4's EMA without
  restart and deferred training that keeps the pre-switch codebook; chapter
  5's joint run at K = 512 (the best collapsed values: utilization 0.49,
  perplexity/K 0.28);
- tokens healthy: chapter 2's deferred run, chapter 4's EMA + restart and
  deferred with re-initialization, chapter 5's deferred runs at every K,
  chapter 7's four vector-quantize-pytorch conditions (worst: chapter 5's
  deferred K = 512, utilization 0.977, perplexity/K 0.64);
- embeddings collapsed: chapter 3's width-4 encoders at every depth and its
  width-4 fixes (best: effective dimension 3 of 16);
- embeddings healthy: chapter 3's linear encoder and its width-128 encoders of
  depth 1 and 2, chapter 7's four conditions (worst: 7 of 16).

The constants below are the rule's output on those results, rounded to two
decimals; ``tests/test_health.py`` re-derives them from the stored results
and checks every stored condition is classified as its chapter shows it.
The study's latents have D = 8 and 16 and K from 8 to 512: far outside that,
read a verdict as a pointer to the numbers, not as a measurement.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

HEALTHY, WATCH, COLLAPSED, UNKNOWN = "healthy", "watch", "collapsed", "n/a"


@dataclass(frozen=True)
class Threshold:
    """``value < collapsed_below`` is collapsed, ``value >= healthy_from`` is healthy, between is watch."""
    metric: str
    collapsed_below: float
    healthy_from: float

    def classify(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return UNKNOWN
        if value < self.collapsed_below:
            return COLLAPSED
        return HEALTHY if value >= self.healthy_from else WATCH


TOKENS = (Threshold("utilization", 0.62, 0.78), Threshold("perplexity_ratio", 0.37, 0.48))
EMBEDDINGS = (Threshold("embed_dim_ratio", 0.25, 0.33),)

# (results file, table inside its "numbers", condition) -> what the chapter shows it to be
STUDY_CONDITIONS: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "tokens": {
        COLLAPSED: [
            ("02_tokens_collapse", "summary", "normal(1e-3), joint"),
            ("02_tokens_collapse", "summary", "uniform(1/K), joint"),
            ("02_tokens_collapse", "summary", "k-means on untrained encoder, joint"),
            ("04_fixes", "summary", "EMA, k-means init"),
            ("04_fixes", "summary", "deferred 0.5, keep k-means cb"),
            ("05_codebook_size", "summary", "joint (k-means on untrained encoder) | K=512"),
        ],
        HEALTHY: [
            ("02_tokens_collapse", "summary", "deferred: k-means on trained encoder"),
            ("04_fixes", "summary", "EMA + restart, k-means init"),
            ("04_fixes", "summary", "EMA + restart, normal init"),
            ("04_fixes", "summary", "deferred 0.5, re-init"),
            ("05_codebook_size", "summary", "deferred | K=8"),
            ("05_codebook_size", "summary", "deferred | K=32"),
            ("05_codebook_size", "summary", "deferred | K=128"),
            ("05_codebook_size", "summary", "deferred | K=512"),
            ("07_vector_quantize_pytorch", "summary", "library defaults"),
            ("07_vector_quantize_pytorch", "summary", "kmeans_init=True (joint)"),
            ("07_vector_quantize_pytorch", "summary", "threshold_ema_dead_code=2"),
            ("07_vector_quantize_pytorch", "summary", "kmeans_init=True, deferred"),
        ],
    },
    "embeddings": {
        COLLAPSED: [
            ("03_embeddings_collapse", "grid", "depth 1, width 4"),
            ("03_embeddings_collapse", "grid", "depth 2, width 4"),
            ("03_embeddings_collapse", "grid", "depth 4, width 4"),
            ("03_embeddings_collapse", "claims:C4:fixes_means", "baseline"),
            ("03_embeddings_collapse", "claims:C4:fixes_means", "restart"),
            ("03_embeddings_collapse", "claims:C4:fixes_means", "deferred"),
            ("03_embeddings_collapse", "claims:C4:fixes_means", "deferred + restart"),
        ],
        HEALTHY: [
            ("03_embeddings_collapse", "grid", "linear"),
            ("03_embeddings_collapse", "grid", "depth 1, width 128"),
            ("03_embeddings_collapse", "grid", "depth 2, width 128"),
            ("07_vector_quantize_pytorch", "summary", "library defaults"),
            ("07_vector_quantize_pytorch", "summary", "kmeans_init=True (joint)"),
            ("07_vector_quantize_pytorch", "summary", "threshold_ema_dead_code=2"),
            ("07_vector_quantize_pytorch", "summary", "kmeans_init=True, deferred"),
        ],
    },
}


def verdict_inputs(metrics: Mapping[str, Any], codebook_size: int, dim: int) -> dict[str, float | None]:
    """The scale-free numbers the thresholds read, from a diagnose()-style dict (None where absent)."""
    def get(key: str) -> float | None:
        value = metrics.get(key)
        return None if value is None else float(value)

    perplexity, edim = get("perplexity"), get("embed_effective_dim")
    return {
        "utilization": get("utilization"),
        "perplexity_ratio": None if perplexity is None else perplexity / codebook_size,
        "embed_dim_ratio": None if edim is None else edim / dim,
    }


def _combine(labels: list[str]) -> str:
    known = [x for x in labels if x != UNKNOWN]
    if not known:
        return UNKNOWN
    if COLLAPSED in known:
        return COLLAPSED
    return HEALTHY if all(x == HEALTHY for x in known) else WATCH


def verdicts(inputs: Mapping[str, float | None]) -> dict[str, str]:
    """``{"tokens": ..., "embeddings": ...}`` for the numbers of :func:`verdict_inputs`."""
    return {name: _combine([t.classify(inputs.get(t.metric)) for t in group])
            for name, group in (("tokens", TOKENS), ("embeddings", EMBEDDINGS))}


# --- the rule, applied to the stored results ----------------------------------------------------

def _table(results: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    numbers = results["numbers"]
    if not where.startswith("claims:"):
        return numbers[where]
    _, claim, key = where.split(":")
    return next(c["numbers"][key] for c in results["claims"] if c["claim"] == claim)


def stored_condition_inputs(results_dir: Path) -> dict[str, dict[str, list[tuple[str, dict[str, float | None]]]]]:
    """For each collapse and each side, (condition, verdict inputs) of every condition in :data:`STUDY_CONDITIONS`."""
    cache: dict[str, Any] = {}
    out: dict[str, dict[str, list]] = {}
    for collapse, sides in STUDY_CONDITIONS.items():
        for side, conditions in sides.items():
            rows = out.setdefault(collapse, {}).setdefault(side, [])
            for chapter, where, condition in conditions:
                if chapter not in cache:
                    cache[chapter] = json.loads((results_dir / f"{chapter}.json").read_text())
                res = cache[chapter]
                cfg = res["numbers"].get("config") or {}
                k = int(res["parameters"].get("codebook_size") or cfg["quantizer"]["codebook_size"])
                dim = int(res["parameters"].get("latent_dim") or cfg["model"]["latent_dim"])
                if "| K=" in condition:
                    k = int(condition.rsplit("=", 1)[1])
                rows.append((f"{chapter}: {condition}", verdict_inputs(_table(res, where)[condition], k, dim)))
    return out


def derive_thresholds(results_dir: Path) -> dict[str, Threshold]:
    """The module docstring's rule applied to the stored results: one :class:`Threshold` per metric."""
    stored = stored_condition_inputs(results_dir)
    derived = {}
    for collapse, group in (("tokens", TOKENS), ("embeddings", EMBEDDINGS)):
        for t in group:
            bad = max(v[t.metric] for _, v in stored[collapse][COLLAPSED])
            good = min(v[t.metric] for _, v in stored[collapse][HEALTHY])
            if not bad < good:
                raise ValueError(f"{t.metric}: the stored collapsed runs reach {bad:.3g}, above the healthy "
                                 f"runs' {good:.3g}: no threshold separates them")
            step = (good / bad) ** (1 / 3)
            derived[t.metric] = Threshold(t.metric, bad * step, bad * step * step)
    return derived


def misclassified(results_dir: Path, tokens: tuple[Threshold, ...] = TOKENS,
                  embeddings: tuple[Threshold, ...] = EMBEDDINGS) -> list[str]:
    """Stored conditions whose verdict under these thresholds is not what their chapter shows (empty: all agree)."""
    groups = {"tokens": tokens, "embeddings": embeddings}
    wrong = []
    for collapse, sides in stored_condition_inputs(results_dir).items():
        for side, rows in sides.items():
            for name, inputs in rows:
                got = _combine([t.classify(inputs.get(t.metric)) for t in groups[collapse]])
                if got != side:
                    wrong.append(f"{collapse} collapse, {name}: {got}, expected {side}")
    return wrong
