"""Chapter 3's module: its parameter model, its plan of runs, and the pure steps from runs to claims."""
from __future__ import annotations

import pandas as pd
import pytest

from vqstudy import notebook as nbk
from vqstudy.chapters import embeddings_collapse as ec


@pytest.mark.parametrize("changes, name", [
    ({"seeds": [0, 0]}, "seeds"),
    ({"steps": 5}, "steps"),
    ({"depths": [2]}, "depths"),
    ({"widths": [4, 4, 128]}, "widths"),
    ({"restart_threshold": 0}, "restart_threshold"),
    ({"warmup_fractions": [0.5, 1.0]}, "warmup_fractions"),
    ({"device": "gpu"}, "device"),
    ({"workers": 0}, "workers"),
])
def test_an_invalid_value_is_refused_naming_its_parameter(changes, name):
    with pytest.raises(nbk.ParameterError, match=rf"^parameter {name}="):
        ec.Parameters(**changes)


def test_relations_between_parameters_are_checked_and_named():
    with pytest.raises(nbk.ParameterError, match=r"parameter fix_depth=3 is invalid: it must be one of depths"):
        ec.Parameters(fix_depth=3)
    with pytest.raises(nbk.ParameterError, match=r"parameter widths=\[8, 16\] is invalid: it must hold 4 and 128"):
        ec.Parameters(widths=[16, 8])
    with pytest.raises(nbk.ParameterError, match=r"parameter warmup_fractions=.* with steps=10, each warm-up"):
        ec.Parameters(steps=10, warmup_fractions=[0.01, 0.5])   # 0.01 of 10 steps rounds to no warm-up


def test_grids_are_sorted_and_the_derived_sizes_follow_the_parameters():
    p = ec.Parameters(depths=[4, 0, 2], widths=[128, 4], warmup_fractions=[0.5, 0.25], steps=100, grid_seeds=5,
                      seeds=[3, 1])
    assert (p.depths, p.widths, p.warmup_fractions) == ([0, 2, 4], [4, 128], [0.25, 0.5])
    assert (p.half, p.warmups, p.grid_seed_count, p.sweep_seed_count) == (50, [25, 50], 2, 2)


def test_the_full_profile_trains_other_seeds_longer_on_a_finer_grid():
    p = ec.Parameters.from_notebook({"profile": "full", "steps": 100, "eval_every": 10})
    assert p.seeds == list(range(10, 30)) and (p.steps, p.eval_every) == (400, 40)
    assert p.widths == [4, 8, 16, 32, 128] and (p.grid_seeds, p.sweep_seeds) == (2, 3)
    assert p.warmup_fractions == [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    assert ec.Parameters.from_notebook({"profile": "quick"}) == ec.Parameters()


def test_the_plan_trains_a_configuration_that_serves_two_rows_once():
    params = ec.Parameters()
    plan = ec.run_plan(params, ec.base_config(params))
    assert plan.part.value_counts().to_dict() == {"primary": 40, "grid": 30, "warm-up": 12, "fixes": 1}
    assert len(set(plan.config)) == 76   # the grid's depth-2 deferred runs are primary arms of seed 0, ...
    autoencoder = plan[plan.training == "autoencoder"]
    assert set(autoencoder.phase) == {"autoencoder"} and set(plan.phase) == {"autoencoder", "final"}
    restarts = plan[plan.restart]
    assert {c.quantizer.restart_threshold for c in restarts.config} == {1.0}
    assert {c.quantizer.restart_threshold for c in plan[~plan.restart].config} == {0.0}


def _frame() -> pd.DataFrame:
    """Primary arms of two seeds, as run_frame gives them (only the columns the claims read)."""
    rows = [{"part": "primary", "training": t, "width": w, "restart": r, "seed": s,
             "embed_effective_dim": float(w == ec.WIDE) * 6 + 2 + s + (t == "joint")}
            for s in (0, 1) for t, w, r in ec.PRIMARY]
    return pd.DataFrame(rows)


def test_claim_values_pair_the_registrys_arms_seed_by_seed():
    values = ec.claim_values(_frame())
    assert list(values) == list(ec.CLAIMS)
    assert values["C4"]["C4-width"] == ({0: 2.0, 1: 3.0}, {0: 8.0, 1: 9.0})
    assert values["C4"]["C4-fix"] == ({0: 2.0, 1: 3.0}, {0: 8.0, 1: 9.0})
    assert values["C9"]["C9-warmup"] == ({0: 8.0, 1: 9.0}, {0: 9.0, 1: 10.0})


def test_saturation_table_names_the_first_width_that_stays_near_the_best():
    rows = [{"part": "grid", "training": t, "depth": 1, "width": w, "embed_effective_dim": dim, "recon_error": mse}
            for t in ("autoencoder", "joint", "deferred")
            for w, dim, mse in ((4, 2.0, 9.0), (16, 9.5, 1.05), (128, 10.0, 1.0))]
    table = ec.saturation_table(pd.DataFrame(rows))
    assert list(table.index) == ["autoencoder, depth 1", "joint, depth 1", "deferred, depth 1"]
    assert table.loc["joint, depth 1", "effective dim saturates at width"] == 16
    assert table.loc["joint, depth 1", "recon error saturates at width"] == 16


def test_the_deep_phrase_follows_the_joint_over_deferred_ratio():
    assert "joint training" in ec.deep_phrase(7.0)
    assert "alike" in ec.deep_phrase(1.0)
    assert "worse" in ec.deep_phrase(0.5)


def test_the_digits_grid_is_the_mixtures_grid_on_the_digits():
    params = ec.Parameters()
    base = ec.base_config(params)
    digits, plan = ec.digits_plan(params, base), ec.run_plan(params, base)
    mixture = plan[plan.part == "grid"].reset_index(drop=True)
    assert set(digits.part) == {ec.DIGITS_PART} and len(digits) == len(mixture)
    for a, b in zip(digits.config, mixture.config):
        assert a.data.name == "digits" and a.replace(data=b.data.to_dict()) == b


def _digits_frame(mse_by_depth: dict[int, float]) -> pd.DataFrame:
    rows = [{"part": ec.DIGITS_PART, "training": t, "capacity": "linear", "embed_effective_dim": 5.0,
             "recon_error": 0.05} for t in ("autoencoder", "joint", "deferred")]
    for t in ("autoencoder", "joint", "deferred"):
        for d in (1, 2, 4):
            for w in (4, 16, 128):
                rows.append({"part": ec.DIGITS_PART, "training": t, "capacity": f"depth {d}, width {w}",
                             "embed_effective_dim": 8.0, "recon_error": mse_by_depth[d] if w == 128 else 0.05})
    return pd.DataFrame(rows)


def test_the_digits_text_says_whether_depth_lowers_the_autoencoders_error_by_a_tenth():
    params = ec.Parameters()
    helps = ec.digits_text(_digits_frame({1: 0.020, 2: 0.015, 4: 0.019}), params)
    assert helps["c4_digits_depth_word"] == "depth helps here: depth 2 reconstructs with 0.75 times the error of depth 1"
    assert "0.02 at depth 1, 0.015 at depth 2, 0.019 at depth 4 (linear: 0.05)" in helps["c4_digits_depth"]
    assert helps["c4_digits_nonlinear"].endswith("with 0.40 times the linear encoder's error")
    flat = ec.digits_text(_digits_frame({1: 0.020, 2: 0.019, 4: 0.021}), params)
    assert flat["c4_digits_depth_word"].startswith("depth does not help here")
    assert set(flat) >= {"c4_digits_autoencoder", "c4_digits_joint", "c4_digits_deferred"}
