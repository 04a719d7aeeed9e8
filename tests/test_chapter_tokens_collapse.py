"""Chapter 2's module: its parameter model, the runs it designs, and its tables and texts on tiny frames."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from vqstudy import notebook as nbk
from vqstudy.chapters import tokens_collapse as tc


@pytest.mark.parametrize("namespace, message", [
    ({"profile": "bogus"}, "parameter profile='bogus' is invalid: allowed values are 'quick', 'full'"),
    ({"seeds": [0, 0]}, "parameter seeds=[0, 0] is invalid: entries must be distinct"),
    ({"steps": 5}, "parameter steps=5 is invalid: expected an integer >= 10"),
    ({"codebook_size": 1}, "parameter codebook_size=1 is invalid: expected an integer >= 2"),
    ({"data_dim": 3}, "parameter data_dim=3 is invalid: expected an integer >= 4"),
    ({"init_scales": [0.1, -1.0]}, "parameter init_scales=[0.1, -1.0] is invalid: entry -1.0 is not a positive"),
    ({"map_codebook_sizes": [1, 10]}, "parameter map_codebook_sizes=[1, 10] is invalid: entry 1"),
    ({"map_seeds": []}, "parameter map_seeds=[] is invalid"),
    ({"c2_seeds": [-1]}, "parameter c2_seeds=[-1] is invalid"),
    ({"device": "tpu"}, "parameter device='tpu' is invalid: allowed values are 'cpu', 'cuda'"),
    ({"workers": 0}, "parameter workers=0 is invalid: expected an integer >= 1"),
])
def test_an_invalid_parameter_is_named_in_the_error(namespace, message):
    with pytest.raises(nbk.ParameterError, match=re.escape(message)):
        tc.Parameters.from_notebook(namespace)


def test_the_full_profile_takes_other_seeds_four_times_the_steps_and_a_finer_map():
    full = tc.Parameters.from_notebook({"profile": "full", "steps": 100, "codebook_size": 32})
    assert full.seeds == list(range(10, 30)) and set(full.seeds).isdisjoint(tc.Parameters().seeds)
    assert (full.steps, full.codebook_size) == (400, 32)
    assert full.map_seeds == full.c2_seeds == list(range(10, 15))
    assert full.init_scales == [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert full.map_codebook_sizes == [10, 20, 40, 80, 160, 320, 640]
    assert tc.work_ratio(tc.Parameters()) == 8.0 and tc.work_ratio(full) == 1.0


def test_the_design_pairs_every_arm_on_the_same_seeds_and_changes_only_the_init_or_schedule():
    params = tc.Parameters(seeds=[0, 1], steps=100, init_scales=[0.01], map_codebook_sizes=[10, 20], c2_seeds=[5])
    design = tc.design(params)
    assert design.labels == [arm for arm in tc.ARMS for _ in (0, 1)]
    assert [c.train.seed for c in design.configs] == [0, 1] * 4
    for config in design.configs:
        assert (config.model, config.train.steps) == (design.base.model, 100)
    healthy = design.configs[design.labels.index(tc.HEALTHY)]
    assert (healthy.train.schedule, healthy.train.warmup_steps) == ("deferred", 50)
    assert design.map_labels == ["normal(0.01)", tc.KMEANS_ROW, tc.DEFERRED_ROW] * 2
    assert [c.quantizer.codebook_size for c in design.map_configs] == [10] * 3 + [20] * 3
    assert design.c2_labels == [(s, arm) for s in tc.c2_settings(params) for arm in (tc.SHRUNK, tc.HEALTHY)]


def _primary(seeds=(0, 1, 2)) -> pd.DataFrame:
    """Runs of the four arms as results_frame rows: the shrunk arm with half the healthy perplexity."""
    rows = []
    for arm, scale in zip(tc.ARMS, (0.1, 0.2, 0.5, 1.0)):
        for s in seeds:
            rows.append({"condition": arm, "seed": s, **{m: scale * (s + 1) for m in tc.METRICS},
                         "used_codes": 10 * scale + s})
    return pd.DataFrame(rows)


def test_reconstruction_by_seed_pairs_the_shrunk_and_healthy_arms_seed_by_seed():
    data = SimpleNamespace(x=torch.tensor([[0.0, 0.0], [2.0, 2.0]]))   # variance 2 per dimension
    table = tc.reconstruction_by_seed(_primary(), data)
    assert list(table.index) == [0, 1, 2]
    assert table[tc.PPL_DROP].tolist() == pytest.approx([2.0] * 3)
    assert table[tc.MSE_RISE].tolist() == pytest.approx([0.5] * 3)
    assert table[tc.R2_HEALTHY].tolist() == pytest.approx([0.5, 0.0, -0.5])
    assert tc.shrunk_codes(_primary()) == 6   # codes used 5, 6, 7


def test_the_c2_ratio_is_shrunk_over_deferred_per_setting():
    index = pd.MultiIndex.from_product([["main", "small"], [tc.SHRUNK, tc.HEALTHY]], names=["setting", "condition"])
    table = pd.DataFrame({m: [1.0, 4.0, 3.0, 6.0] for m in tc.C2_METRICS}, index=index)
    ratio = tc.c2_ratio(table)
    assert list(ratio.index) == ["main", "small"]
    assert ratio["mode_entropy"].tolist() == [0.25, 0.5]


def test_the_evidence_and_texts_read_the_arms_means():
    df, params = _primary(), tc.Parameters(codebook_size=64)
    index = pd.MultiIndex.from_product([[tc.main_setting(params), *tc.c2_settings(params)], [tc.SHRUNK, tc.HEALTHY]],
                                       names=["setting", "condition"])
    c2 = pd.DataFrame({m: [1.0, 4.0] * 3 for m in tc.C2_METRICS}, index=index)
    inputs = tc.claim_inputs(df, c2, 64)
    assert set(inputs["C1"]["values"]) == {"C1-normal", "C1-uniform"}
    normal, healthy = inputs["C1"]["values"]["C1-normal"]
    assert (normal, healthy) == (pytest.approx({0: 0.1, 1: 0.2, 2: 0.3}), {0: 1.0, 1: 2.0, 2: 3.0})
    assert inputs["C1"]["evidence"] == "Secondary: utilization 20% (normal), 40% (uniform) vs 200% (deferred); K = 64."
    assert inputs["C2"]["evidence"].endswith("ratio of the arms' means by setting: 0.25 (latent 8, encoder 2 x 128, "
                                             "K = 64), 0.25 (latent 4, encoder 2 x 64, K = 64), 0.25 (latent 8, "
                                             "encoder 2 x 128, K = 10).")
    means = tc.means_texts(tc.condition_means(df))
    assert (means["ppl_shrunk"], means["util_healthy"], means["h_ideal"]) == ("1.0", "200%", f"{np.log(10):.2f}")
    texts = tc.c2_texts(params, c2)
    assert (texts["c2_small_ratio"], texts["c2_near_h"], texts["c2_seeds"]) == ("0.25", "1.00 vs 4.00", "3")
