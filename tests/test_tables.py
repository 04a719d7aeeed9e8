"""Run tables: one arm of a paired comparison by seed (chapters 4, 5); medians with distribution-free intervals
(the leaderboard of chapter 8, "Which fix?")."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vqstudy.tables import (by_seed, fmt_effect, fmt_median_interval, median_interval, median_strings,
                            median_table)


def frame() -> pd.DataFrame:
    return pd.DataFrame({"condition": ["joint", "joint", "deferred", "deferred", ("sweep", 0.5)],
                         "seed": [0, 1, 0, 1, 0], "perplexity": [10.0, 12.0, 60.0, 61.0, 59.0]})


def test_by_seed_returns_one_arm_keyed_by_seed():
    df = frame()
    assert by_seed(df, "deferred", "perplexity") == {0: 60.0, 1: 61.0}
    assert by_seed(df, ("sweep", 0.5), "perplexity") == {0: 59.0}      # tuple labels as the chapters use
    assert by_seed(df, "joint", "perplexity", seeds=[1]) == {1: 12.0}


def test_by_seed_refuses_what_cannot_be_paired():
    df = frame()
    with pytest.raises(ValueError, match="unknown metric 'recon'"):
        by_seed(df, "joint", "recon")
    with pytest.raises(ValueError, match="no runs of condition 'ema'"):
        by_seed(df, "ema", "perplexity")
    with pytest.raises(ValueError, match=r"no run for seed\(s\) \[1\]"):
        by_seed(df, ("sweep", 0.5), "perplexity", seeds=[0, 1])
    twice = pd.concat([df, df.iloc[:1]])
    with pytest.raises(ValueError, match="more than one run per seed"):
        by_seed(twice, "joint", "perplexity")


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
