"""The healthy / watch / collapsed thresholds against the study's stored runs (results/*.json)."""
from pathlib import Path

import pytest

from vqstudy import health

RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_every_stored_condition_gets_the_verdict_its_chapter_shows():
    assert health.misclassified(RESULTS) == []


def test_the_check_fails_when_the_thresholds_do_not_separate_the_runs():
    too_strict = (health.Threshold("utilization", 0.99, 0.995),) + health.TOKENS[1:]
    wrong = health.misclassified(RESULTS, tokens=too_strict)
    assert any("deferred | K=512" in w for w in wrong)


def test_constants_are_the_rule_applied_to_the_stored_results():
    derived = health.derive_thresholds(RESULTS)
    stored = health.stored_condition_inputs(RESULTS)
    for collapse, group in (("tokens", health.TOKENS), ("embeddings", health.EMBEDDINGS)):
        for t in group:
            best_collapsed = max(v[t.metric] for _, v in stored[collapse][health.COLLAPSED])
            worst_healthy = min(v[t.metric] for _, v in stored[collapse][health.HEALTHY])
            tolerance = 0.1 * (worst_healthy - best_collapsed)  # re-executed chapters may move a little
            assert t.collapsed_below == pytest.approx(derived[t.metric].collapsed_below, abs=tolerance), t.metric
            assert t.healthy_from == pytest.approx(derived[t.metric].healthy_from, abs=tolerance), t.metric
            assert best_collapsed < t.collapsed_below < t.healthy_from <= worst_healthy


def test_rule_refuses_overlapping_runs(tmp_path, monkeypatch):
    conditions = {"tokens": {health.COLLAPSED: [("02_tokens_collapse", "summary", "deferred: k-means on trained encoder")],
                             health.HEALTHY: [("02_tokens_collapse", "summary", "normal(1e-3), joint")]},
                  "embeddings": health.STUDY_CONDITIONS["embeddings"]}
    monkeypatch.setattr(health, "STUDY_CONDITIONS", conditions)
    with pytest.raises(ValueError, match="no threshold separates them"):
        health.derive_thresholds(RESULTS)


@pytest.mark.parametrize("inputs, expected", [
    ({"utilization": 1.0, "perplexity_ratio": 0.9, "embed_dim_ratio": 0.9}, {"tokens": "healthy", "embeddings": "healthy"}),
    ({"utilization": 0.7, "perplexity_ratio": 0.9, "embed_dim_ratio": 0.3}, {"tokens": "watch", "embeddings": "watch"}),
    ({"utilization": 1.0, "perplexity_ratio": 0.1, "embed_dim_ratio": 0.1}, {"tokens": "collapsed", "embeddings": "collapsed"}),
    ({"utilization": None, "perplexity_ratio": None, "embed_dim_ratio": None}, {"tokens": "n/a", "embeddings": "n/a"}),
])
def test_verdicts_combine_the_worst_number(inputs, expected):
    assert health.verdicts(inputs) == expected
