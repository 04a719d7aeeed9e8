"""The pre-registered claims registry and its single verdict rule."""
import math

import numpy as np
import pytest

from vqstudy import claims
from vqstudy.claims import REGISTRY, judge_claim, judge_test, primary_tests

SEEDS = range(10)


def arms(test, effect: float, noise: float, seed: int = 0):
    """Treatment and control by seed whose paired effect is ``effect`` (ratio or difference) plus noise."""
    rng = np.random.default_rng(seed)
    control = {s: 10.0 + rng.uniform(0, 1) for s in SEEDS}
    if test.scale == "ratio":
        treatment = {s: control[s] * effect * math.exp(rng.normal(0, noise)) for s in SEEDS}
    else:
        treatment = {s: control[s] + effect + rng.normal(0, noise) for s in SEEDS}
    return treatment, control


def null_effect(test):
    return 1.0 if test.scale == "ratio" else 0.0


def strong_effect(test):
    """Well beyond the threshold, on the paper's side."""
    if test.scale == "ratio":
        return test.threshold * (0.5 if test.side == "below" else 2.0)
    return test.threshold + (-2.0 if test.side == "below" else 2.0)


def test_registry_covers_every_claim_with_unique_keys():
    assert claims.CLAIM_IDS == tuple(f"C{i}" for i in range(1, 10))
    keys = [t.key for t in REGISTRY]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("claim", claims.CLAIM_IDS)
def test_no_claim_is_reproduced_when_the_papers_effect_is_absent(claim):
    """No primary test can hold by construction: with every arm equal, the verdict is never 'reproduced'."""
    for noise in (0.01, 0.2):
        values = {t.key: arms(t, null_effect(t), noise) for t in primary_tests(claim)}
        assert judge_claim(claim, values).verdict != "reproduced"


@pytest.mark.parametrize("claim", claims.CLAIM_IDS)
def test_a_clear_effect_is_reproduced_and_stable(claim):
    values = {t.key: arms(t, strong_effect(t), 0.05) for t in primary_tests(claim)}
    result = judge_claim(claim, values)
    assert result.verdict == "reproduced"
    assert result.stability > 0.99


@pytest.mark.parametrize("test", REGISTRY, ids=lambda t: t.key)
def test_a_reversed_effect_fails(test):
    if test.scale == "ratio":
        effect = test.threshold * (4.0 if test.side == "below" else 0.25)
    else:
        effect = test.threshold + (3.0 if test.side == "below" else -3.0)
    assert judge_test(test, *arms(test, effect, 0.05)).outcome == "fails"


def test_a_knife_edge_is_inconclusive_or_unstable():
    test = primary_tests("C7")[0]
    result = judge_claim("C7", {test.key: arms(test, test.threshold, 0.02, seed=3)})
    assert result.verdict == "inconclusive" or result.stability < 0.9
    lo, hi = result.tests[0].interval
    assert lo < test.threshold < hi


def test_interval_is_the_student_t_interval_of_the_paired_log_ratios():
    test = primary_tests("C8")[0]
    t, c = arms(test, 3.0, 0.1)
    got = judge_test(test, t, c)
    logs = np.log([t[s] / c[s] for s in SEEDS])
    half = 2.2621571627409915 * logs.std(ddof=1) / math.sqrt(10)      # t(0.975, 9)
    assert got.effect == pytest.approx(math.exp(logs.mean()))
    assert got.interval == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))


def test_bad_input_is_refused_with_the_test_named():
    test = primary_tests("C1")[0]
    t, c = arms(test, 0.2, 0.05)
    with pytest.raises(ValueError, match="C1-normal: 3 seeds given, the rule needs at least 10"):
        judge_test(test, {s: t[s] for s in range(3)}, {s: c[s] for s in range(3)})
    with pytest.raises(ValueError, match="same seeds"):
        judge_test(test, t, {s + 1: v for s, v in c.items()})
    with pytest.raises(ValueError, match="non-finite"):
        judge_test(test, {**t, 0: float("nan")}, c)
    with pytest.raises(ValueError, match="invalid claim='C10'"):
        primary_tests("C10")
    with pytest.raises(ValueError, match="no values for primary test"):
        judge_claim("C1", {"C1-normal": (t, c)})


def test_stability_is_reproducible():
    test = primary_tests("C7")[0]
    values = {test.key: arms(test, test.threshold * 0.99, 0.02, seed=5)}
    assert judge_claim("C7", values).stability == judge_claim("C7", values).stability


def test_secondary_paired_effect_matches_the_primary_statistic():
    test = primary_tests("C8")[0]
    t, c = arms(test, 3.0, 0.1)
    judged = judge_test(test, t, c)
    assert claims.paired_effect(t, c) == pytest.approx((judged.effect, *judged.interval))
    diff = claims.paired_effect({0: 3.0, 1: 5.0}, {0: 1.0, 1: 2.0}, scale="difference")
    assert diff[0] == pytest.approx(2.5)
    assert diff[1] < 2.5 < diff[2]
    with pytest.raises(ValueError, match="invalid scale='log'"):
        claims.paired_effect(t, c, scale="log")
    with pytest.raises(ValueError, match="at least 2 seeds"):
        claims.paired_effect({0: 1.0}, {0: 2.0})
    with pytest.raises(ValueError, match="same seeds"):
        claims.paired_effect({0: 1.0, 1: 1.0}, {0: 1.0, 2: 1.0})
    with pytest.raises(ValueError, match="positive"):
        claims.paired_effect({0: 1.0, 1: 0.0}, {0: 1.0, 1: 1.0})


def test_side_of_places_an_interval_against_a_bound():
    assert claims.side_of((0.8, 0.7, 0.95)) == "below"
    assert claims.side_of((1.2, 1.05, 1.3)) == "above"
    assert claims.side_of((1.0, 0.9, 1.1)) == "includes"
    assert claims.side_of((3.0, 2.5, 3.5), bound=2.0) == "above"
    with pytest.raises(ValueError, match="effect must be"):
        claims.side_of((1.0, 0.9))
