"""Chapter 4's module: its parameter model, the runs it plans, and the tables and prose it builds from runs."""
from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from vqstudy import notebook as nbk
from vqstudy.chapters import fixes

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_fixes.ipynb"


@pytest.mark.parametrize("changes, name", [
    ({"seeds": [0, 1, 2]}, "seeds"),                                    # fewer than the rule's ten
    ({"secondary_seeds": 11}, "secondary_seeds"),                        # more than there are seeds
    ({"main_fraction": 0.25}, "main_fraction"),                          # not one of the sweep's warm-ups
    ({"steps": 10, "warmup_fractions": [0.01, 0.5]}, "warmup_fractions"),  # 0.01 of 10 steps: no warm-up
    ({"warmup_fractions": [0.5, 1.0]}, "warmup_fractions"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"restart_threshold": 0}, "restart_threshold"),
    ({"larger_width": 0}, "larger_width"),
    ({"device": "gpu"}, "device"),
    ({"profile": "long"}, "profile"),
])
def test_an_invalid_parameter_is_refused_by_name(changes, name):
    with pytest.raises(nbk.ParameterError, match=rf"^parameter {name}="):
        fixes.Parameters(**changes)


def test_the_full_profile_uses_other_seeds_four_times_the_steps_and_a_finer_sweep():
    full = fixes.Parameters.from_notebook({"profile": "full", "steps": 100})
    assert full.seeds == list(range(10, 30)) and full.few == list(range(10, 20))
    assert full.steps == 400
    assert full.warmup_fractions == [0.0625, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875]
    assert (full.larger_depth, full.larger_width) == (4, 256)
    assert fixes.work_ratio(full) == 1.0
    assert fixes.work_ratio(fixes.Parameters()) == 8.0   # twice the seeds, four times the steps


def test_every_condition_shares_the_budget_and_k_and_the_secondary_ones_run_on_the_first_seeds():
    p = fixes.Parameters(secondary_seeds=2)
    plan = fixes.conditions(p)
    assert list(plan) == list(fixes.labels(p).values())
    assert {c.train.steps for c, _ in plan.values()} == {p.steps}
    assert {c.quantizer.codebook_size for c, _ in plan.values()} == {p.codebook_size}
    assert {name for name, (_, seeds) in plan.items() if seeds == p.seeds} == {
        "k-means joint (baseline)", "deferred 0.5, re-init", "EMA + restart, k-means init"}
    assert all(seeds in (p.seeds, [0, 1]) for _, seeds in plan.values())
    defer, keep = plan["deferred 0.5, re-init"][0].train, plan["deferred 0.5, keep k-means cb"][0].train
    assert (defer.warmup_steps, defer.reinit_at_switch, keep.reinit_at_switch) == (750, True, False)


def test_the_warm_up_sweep_starts_at_the_joint_baseline_for_both_variants():
    p = fixes.Parameters()
    grid = fixes.warmup_sweep(p)
    assert set(grid) == {(v, f) for v in (fixes.REINIT, fixes.KEEP) for f in [0.0, *p.warmup_fractions]}
    assert grid[(fixes.REINIT, 0.0)] == grid[(fixes.KEEP, 0.0)] == fixes.kmeans_start(p)
    assert grid[(fixes.KEEP, 0.75)].train.warmup_steps == round(0.75 * p.steps)
    assert len(fixes.labelled_runs(p)) == 10 * 3 + 3 * 6 + 8 * 3   # conditions, then the sweep on 3 seeds


def _study(p: fixes.Parameters) -> fixes.Study:
    """Made-up measures: deferred ~5x the baseline's perplexity at half its MSE; EMA + restart at par."""
    rng = np.random.default_rng(0)
    level = {"km": (10, 2.0), "normal": (6, 5.0), "defer": (60, 0.8), "keep": (10, 2.5), "larger": (9, 2.8),
             "restart": (44, 1.0), "ema": (17, 0.95), "er_km": (59, 0.78), "er_n": (58, 0.79)}
    rows = []
    for key, (name, (_, seeds)) in zip(fixes.KEYS, fixes.conditions(p).items()):
        ppl, mse = level[key]
        for s in seeds:
            rows.append({"condition": name, "seed": s, "perplexity": ppl * rng.uniform(0.95, 1.05),
                         "recon_error": mse * rng.uniform(0.95, 1.05), "utilization": min(1.0, ppl / 40),
                         "codebook_euclidean_spread": ppl / 4, "mode_entropy": 2.2, "clusters_covered": 10,
                         "quantization_error": 0.1, "usage_entropy": math.log(ppl)})
    frame = pd.DataFrame(rows)
    frame["used_bits"] = frame["usage_entropy"] / math.log(2)
    warmup = pd.DataFrame([{"condition": (v, f), "variant": v, "warm-up fraction": f, "seed": s,
                            "perplexity": 10 + 50 * f * (v == fixes.REINIT) + s, "recon_error": 2 - f,
                            "utilization": 0.2, "codebook_euclidean_spread": 1.7}
                           for v in (fixes.REINIT, fixes.KEEP) for f in [0.0, *p.warmup_fractions] for s in p.few])
    return fixes.Study(p, frame, warmup, 60, ["ok"])


def test_the_tables_count_each_conditions_seeds_and_average_the_sweep():
    study = _study(fixes.Parameters())
    table = fixes.side_by_side_table(study)
    assert list(table.index) == study.order and list(table["seeds"]) == [10, 3, 10, 3, 3, 3, 3, 10, 3]
    sweep = fixes.warmup_table(study)
    assert sweep.loc[(fixes.REINIT, 0.5), "perplexity"] == pytest.approx(10 + 25 + 1)   # mean of seeds 0, 1, 2
    with pytest.raises(ValueError, match="runs per condition"):
        fixes.side_by_side_table(fixes.Study(study.params, study.frame.iloc[1:], study.warmup, 60, ["ok"]))


def test_the_ratios_to_deferred_pair_each_condition_with_deferred_on_its_own_seeds():
    study = _study(fixes.Parameters())
    ratios = fixes.ratios_to_deferred(study)
    assert "deferred 0.5, re-init" not in ratios and len(ratios) == 8
    assert ratios["normal(1e-3) joint"]["perplexity"][0] == pytest.approx(0.1, rel=0.1)
    assert ratios["EMA + restart, k-means init"]["recon_error"][0] == pytest.approx(0.975, rel=0.1)


def test_every_glued_name_of_the_prose_gets_a_text():
    study = _study(fixes.Parameters())
    claims = nbk.Claims("04_fixes")
    c8 = claims.judge("C8", fixes.claim_values(study), fixes.claim_evidence(study))
    assert c8.verdict == "reproduced"
    texts = fixes.prose_values(study, c8)
    prose = "".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "markdown")
    assert set(re.findall(r"\{glue:text\}`(\w+)`", prose)) <= set(texts)
    assert all(isinstance(t, str) for t in texts.values())
    assert texts["reinit_ppl_range"] == "17.2–48.5" and texts["reinit_best_frac"] == "0.75"
    assert texts["er_km_within"] == "comes" and "an EMA codebook alone" in texts["short_list"]
    assert "utilization 1 (deferred) vs 0.25 (baseline)" in fixes.claim_evidence(study)
