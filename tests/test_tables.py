"""Run tables: one arm of a paired comparison by seed (chapters 4, 5); medians with distribution-free intervals
(the leaderboard of chapter 8, "Which fix?")."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vqstudy import RunConfig, train
from vqstudy.tables import (by_seed, evaluation, fmt_effect, fmt_median_interval, median_interval, median_strings,
                            median_table, plan_frame, saturation_point, trajectory_frame)


def frame() -> pd.DataFrame:
    return pd.DataFrame({"condition": ["joint", "joint", "deferred", "deferred", ("sweep", 0.5)],
                         "seed": [0, 1, 0, 1, 0], "perplexity": [10.0, 12.0, 60.0, 61.0, 59.0]})


def test_by_seed_returns_one_arm_keyed_by_seed():
    df = frame()
    assert by_seed(df, "perplexity", condition="deferred") == {0: 60.0, 1: 61.0}
    assert by_seed(df, "perplexity", condition=("sweep", 0.5)) == {0: 59.0}      # tuple labels as the chapters use
    assert by_seed(df, "perplexity", seeds=[1], condition="joint") == {1: 12.0}


def test_by_seed_refuses_what_cannot_be_paired():
    df = frame()
    with pytest.raises(ValueError, match="unknown column 'recon'"):
        by_seed(df, "recon", condition="joint")
    with pytest.raises(ValueError, match="no rows with"):
        by_seed(df, "perplexity", condition="ema")
    with pytest.raises(ValueError, match=r"no run for seed\(s\) \[1\]"):
        by_seed(df, "perplexity", seeds=[0, 1], condition=("sweep", 0.5))
    twice = pd.concat([df, df.iloc[:1]])
    with pytest.raises(ValueError, match="repeat seeds"):
        by_seed(twice, "perplexity", condition="joint")


def test_fmt_effect_shows_the_effect_and_its_interval():
    assert fmt_effect((1.0234, 0.9712, 1.0811)) == "1.02 [0.971, 1.08]"
    with pytest.raises(ValueError, match="effect must be"):
        fmt_effect((1.0, 0.9))


def test_median_interval_takes_the_binomial_order_statistics():
    values = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]          # ten seeds, shuffled
    median, low, high = median_interval(values)
    assert median == 5.5 and (low, high) == (2.0, 9.0)  # the 2nd and 9th of ten (coverage 97.9%)
    coverage = 1 - 2 * stats.binom.cdf(1, 10, 0.5)
    assert coverage >= 0.95 > 1 - 2 * stats.binom.cdf(2, 10, 0.5)   # the tightest pair that reaches 95%
    assert median_interval(values + [1000.0])[2] < 1000   # one wild seed does not reach an end
    assert median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)      # few values: the range


def test_median_interval_covers_the_true_median_about_as_promised():
    rng = np.random.default_rng(0)
    hits = [low <= 0.0 <= high for low, high in
            (median_interval(rng.standard_cauchy(10))[1:] for _ in range(2000))]
    assert 0.96 < np.mean(hits) < 0.995


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]]])
def test_median_interval_refuses_bad_values(bad):
    with pytest.raises(ValueError, match="finite numbers"):
        median_interval(bad)
    with pytest.raises(ValueError, match="confidence"):
        median_interval([1.0, 2.0], confidence=1.5)


def test_median_table_is_numeric_sortable_and_keeps_group_order():
    df = pd.DataFrame({"condition": ["b"] * 10 + ["a"] * 10,
                       "mse": list(range(10, 20)) + list(range(10)), "ppl": [5.0] * 20})
    table = median_table(df, ["mse", "ppl"])
    assert list(table.index) == ["b", "a"] and list(table["runs"]) == [10, 10]
    assert table.loc["a", ("mse", "median")] == 4.5 and table.loc["b", ("mse", "low")] == 11
    assert list(table.sort_values(("mse", "median")).index) == ["a", "b"]
    strings = median_strings(table)
    assert list(strings.columns) == ["mse", "ppl"]
    assert strings.loc["a", "mse"] == "4.50 [1, 8]" and strings.loc["b", "ppl"] == "5"
    with pytest.raises(ValueError, match="unknown metric"):
        median_table(df, ["nope"])
    df["data"] = ["x", "y"] * 10
    nested = median_table(df, ["mse"], by=["data", "condition"])
    assert list(nested.index.names) == ["data", "condition"]
    assert list(nested.xs("y", level="data").index) == ["b", "a"]


def test_fmt_median_interval():
    assert fmt_median_interval(0.12345, 0.1, 0.2) == "0.123 [0.100, 0.200]"
    assert fmt_median_interval(64.0, 64.0, 64.0) == "64"


@pytest.fixture(scope="module")
def deferred_run():
    """A deferred run whose warm-up is its whole budget but one step (chapter 3's autoencoder arm)."""
    config = RunConfig().replace(data={"n_per_cluster": 100}, quantizer={"codebook_size": 16},
                                 train={"schedule": "deferred", "steps": 21, "warmup_steps": 20,
                                        "eval_every": 10, "batch_size": 64})
    return train(config)


def test_evaluation_picks_the_last_one_before_quantizing(deferred_run):
    ae = evaluation(deferred_run, "autoencoder")
    assert ae["step"] == 20 and ae["quantized"] is False
    assert evaluation(deferred_run)["step"] == 21 and evaluation(deferred_run)["quantized"] is True
    assert ae["recon_error"] != evaluation(deferred_run)["recon_error"]
    with pytest.raises(ValueError, match="phase"):
        evaluation(deferred_run, "warmup")


def test_evaluation_of_a_joint_run_has_no_autoencoder_phase(tiny_config):
    with pytest.raises(ValueError, match="no evaluation before quantizing"):
        evaluation(train(tiny_config.replace(train={"steps": 2, "eval_every": 2})), "autoencoder")


def test_plan_frame_shares_a_run_between_rows_and_reads_each_rows_phase(deferred_run):
    config = deferred_run.config
    plan = pd.DataFrame({"arm": ["a", "b"], "phase": ["final", "autoencoder"], "config": [config, config]})
    frame = plan_frame(plan, {config: deferred_run})
    assert list(frame.arm) == ["a", "b"] and "config" not in frame.columns
    assert list(frame.seed) == [config.train.seed] * 2
    assert frame.recon_error.tolist() == [deferred_run.final["recon_error"],
                                          evaluation(deferred_run, "autoencoder")["recon_error"]]
    with pytest.raises(ValueError, match="no result"):
        plan_frame(plan, {})
    with pytest.raises(ValueError, match="'config' column"):
        plan_frame(plan.drop(columns="config"), {config: deferred_run})


def test_trajectory_frame_keeps_the_quantized_eval_at_the_switch(deferred_run):
    frame = trajectory_frame([deferred_run], "deferred", ["embed_effective_dim", "no_such_metric"])
    assert frame.step.tolist() == [0, 10, 20, 21]
    assert frame.set_index("step").quantized.to_dict() == {0: False, 10: False, 20: True, 21: True}
    assert math.isnan(frame.no_such_metric.iloc[0])
    with pytest.raises(ValueError, match="condition labels"):
        trajectory_frame([deferred_run], ["a", "b"], [])


def test_by_seed_selects_one_arm():
    frame = pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "m": [1.0, 2.0, 3.0, 4.0]})
    assert by_seed(frame, "m", arm="b") == {0: 3.0, 1: 4.0}
    with pytest.raises(ValueError, match="repeat seeds"):
        by_seed(frame, "m")
    with pytest.raises(ValueError, match="no rows"):
        by_seed(frame, "m", arm="c")
    with pytest.raises(ValueError, match="unknown column"):
        by_seed(frame, "m", depth=2)


def test_saturation_point():
    dims = pd.Series([3.0, 8.0, 9.5, 10.0, 9.0], index=[4, 8, 16, 32, 128])
    assert saturation_point(dims, higher_is_better=True) == 16
    mse = pd.Series([9.0, 2.0, 1.0, 1.5], index=[4, 8, 16, 32])
    assert saturation_point(mse, higher_is_better=False) is None   # the widest falls out again
    assert saturation_point(mse, higher_is_better=False, tolerance=0.5) == 16
    with pytest.raises(ValueError, match="tolerance"):
        saturation_point(dims, True, tolerance=1.0)


def test_contrast_states_both_arms_at_each_key():
    from vqstudy.tables import contrast

    means = pd.DataFrame({"m": [0.004356, 2.0, 1.36, 10.0]},
                         index=pd.MultiIndex.from_tuples([("u", 8), ("u", 32), ("t", 8), ("t", 32)]))
    assert contrast(means, "m", ("u", "t"), [8, 32], "{}-D") == "8-D: 0.00436 against 1.36; 32-D: 2 against 10"
    with pytest.raises(ValueError, match="no row"):
        contrast(means, "m", ("u", "t"), [2])
    with pytest.raises(ValueError, match="unknown metric"):
        contrast(means, "x", ("u", "t"), [8])


def test_value_range():
    from vqstudy.tables import value_range

    assert value_range([3.0, 1.234, 2.0]) == "1.23–3"
    assert value_range([7.0, 7.0]) == "7"
    with pytest.raises(ValueError, match="empty"):
        value_range([])
