"""Chapter 7's module: its parameter model, conditions, claim values and prose, on tiny made-up runs."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from vqstudy import notebook as nbk
from vqstudy.chapters import vector_quantize_pytorch as vqp


@pytest.mark.parametrize("name, value, message", [
    ("profile", "bogus", "allowed values are 'quick', 'full'"),
    ("seeds", [], "expected a list of at least 1 integers"),
    ("seeds", [0, 0], "entries must be distinct"),
    ("secondary_seeds", [-1], "not an integer >= 0"),
    ("steps", 9, "integer >= 10"),
    ("codebook_size", 1, "integer >= 2"),
    ("data_dim", True, "integer >= 2"),
    ("eval_every", 0, "integer >= 1"),
    ("device", "tpu", "allowed values are 'cpu', 'cuda'"),
    ("workers", 0, "integer >= 1"),
])
def test_an_invalid_parameter_fails_naming_it(name, value, message):
    with pytest.raises(nbk.ParameterError, match=rf"parameter {name}=.* is invalid: .*{re.escape(message)}"):
        vqp.Parameters.from_notebook({name: value})


def test_the_full_profile_trains_twenty_other_seeds_five_secondary_ones_four_times_longer():
    full = vqp.Parameters.from_notebook({"profile": "full", "steps": 100})
    assert full.seeds == list(range(10, 30)) and full.secondary_seeds == list(range(10, 15))
    assert (full.steps, full.codebook_size, full.workers) == (400, 64, 2)
    quick = vqp.Parameters()
    assert (quick.seeds, quick.secondary_seeds, quick.steps) == (list(range(10)), [0, 1], 1500)
    assert vqp.work_ratio(quick) == 8.0 and vqp.work_ratio(full) == 1.0


def test_the_conditions_differ_from_the_shared_run_only_in_the_quantizer_and_its_seeds():
    params = vqp.Parameters(seeds=[3, 4], secondary_seeds=[7], steps=40, eval_every=10)
    conditions = vqp.conditions(params)
    assert list(conditions) == vqp.ORDER
    assert all(conditions[name].seeds == [7] and conditions[name].eval_every == 10 for name in vqp.TRACKED)
    healthy = conditions[vqp.HEALTHY]
    assert (healthy.options, healthy.warmup_steps, healthy.seeds, healthy.eval_every) == ({"kmeans_init": True}, 20,
                                                                                        [3, 4], 40)
    assert conditions[vqp.NORMAL].codebook_init == ("normal", 1e-3)
    assert conditions[vqp.UNIFORM].record() == {"options": {}, "warmup_steps": 0, "codebook_init": ("uniform", None),
                                                "seeds": [3, 4]}
    base = vqp.base_config(params)
    assert (base.data.dim, base.model.latent_dim, base.quantizer.codebook_size, base.train.steps) == (8, 8, 64, 40)


def _final(ppl: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"condition": name, "seed": seed, **{m: 1.0 for m in vqp.METRICS}, "perplexity": p}
            for name, values in ppl.items() for seed, p in enumerate(values)]
    return pd.DataFrame(rows)


def test_c1_pairs_each_small_init_with_the_deferred_control_by_seed():
    final = _final({vqp.NORMAL: [10.0, 12.0], vqp.UNIFORM: [20.0, 22.0], vqp.HEALTHY: [50.0, 52.0],
                    vqp.DEFAULT: [30.0, 31.0]})
    values = vqp.c1_values(final)
    assert values == {"C1-normal": ({0: 10.0, 1: 12.0}, {0: 50.0, 1: 52.0}),
                      "C1-uniform": ({0: 20.0, 1: 22.0}, {0: 50.0, 1: 52.0})}
    means = vqp.condition_means(final)
    assert vqp.c1_numbers(means)[vqp.NORMAL] == {"perplexity": 11.0, "utilization": 1.0}
    assert "utilization 100% (normal), 100% (uniform) vs 100% (deferred kmeans_init)" in vqp.c1_evidence(means)


def test_the_runs_are_assembled_in_training_order_with_the_first_defaults_run_kept(monkeypatch):
    params = vqp.Parameters(seeds=[0, 1], secondary_seeds=[5], steps=20, eval_every=10, workers=1)

    def fake_run(config, options, every, warmup=0, init=None, keep_modules=None):
        if keep_modules is not None:
            keep_modules["vq"] = "kept"
        frame = pd.DataFrame({"step": [0, 20], "perplexity": [1.0, float(config.train.seed)]})
        return frame, frame.iloc[-1].to_dict()

    calls = []
    monkeypatch.setattr(vqp, "train_with_vector_quantize", fake_run)
    monkeypatch.setattr(vqp, "train_many_with_vector_quantize",
                        lambda runs, workers: calls.append(runs) or [fake_run(*run) for run in runs])
    runs = vqp.run_conditions(params)
    assert runs.kept == {"vq": "kept"}
    assert list(zip(runs.final.condition, runs.final.seed)) == [
        (vqp.DEFAULT, 5), (vqp.SHRUNK, 5), (vqp.EXPIRY, 5), (vqp.HEALTHY, 0), (vqp.HEALTHY, 1),
        (vqp.NORMAL, 0), (vqp.NORMAL, 1), (vqp.UNIFORM, 0), (vqp.UNIFORM, 1)]
    deferred = calls[0][2][1:]   # (options, eval_every, warm-up steps, codebook init): half the steps unquantized
    assert len(calls[0]) == 8 and deferred == ({"kmeans_init": True}, 20, 10, None)
    assert len(runs.history) == 2 * 9 and runs.final.perplexity.tolist()[3:5] == [0.0, 1.0]
    assert vqp.runs_description(runs, params) == "9 runs of 20 steps, K = 64"


def test_the_prose_texts_keep_their_formats():
    pytest.importorskip("vector_quantize_pytorch")
    params = vqp.Parameters(seeds=[0, 1], secondary_seeds=[0])
    final = _final({name: [40.0, 42.0] for name in vqp.ORDER})
    history = pd.DataFrame({"condition": vqp.DEFAULT, "seed": 0, "step": [0, 250, 1500],
                            "perplexity": [11.84, 14.8, 53.3]})
    tests = [{"key": key, "effect": 0.951, "low": 0.9151, "high": 0.9886, "threshold": 0.5}
             for key in ("C1-normal", "C1-uniform")]
    c1 = nbk.Verdict("C1", "statement", "not reproduced", "evidence", {}, tests, 1.0)
    text = vqp.chapter_text(c1, vqp.condition_means(final), history, params)
    assert {k: text[k] for k in ("c1_verdict", "c1_stability", "n_seeds", "c1_normal", "c1_normal_ci",
                                 "c1_threshold", "default_ppl_first", "default_step_second", "default_util",
                                 "ppl_healthy", "default_eff_dim")} == {
        "c1_verdict": "not reproduced", "c1_stability": "1.00", "n_seeds": "2", "c1_normal": "0.95",
        "c1_normal_ci": "0.92–0.99", "c1_threshold": "0.5", "default_ppl_first": "11.8", "default_step_second": "250",
        "default_util": "100%", "ppl_healthy": "41.0", "default_eff_dim": "1"}
    assert 0 < float(text["default_bound"]) < 1
    assert all(isinstance(v, str) for v in text.values())
