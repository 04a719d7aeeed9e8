"""Tidy run tables: one arm of a paired comparison, read from a results frame by seed."""
from __future__ import annotations

import pandas as pd
import pytest

from vqstudy.tables import by_seed, fmt_effect


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
