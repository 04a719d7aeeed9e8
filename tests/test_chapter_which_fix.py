"""Chapter 8's module: its parameter model, the runs it builds, and the findings it states (no training here)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from vqstudy import notebook as nbk
from vqstudy.chapters import which_fix as wf
from vqstudy.tables import median_table


@pytest.mark.parametrize("namespace, message", [
    ({"datasets": ["digits", "digits"]},
     "parameter datasets=['digits', 'digits'] is invalid: expected distinct entries"),
    ({"datasets": []}, "parameter datasets=[] is invalid: expected distinct entries, at least one"),
    ({"starts": ["uniform"]}, "parameter starts='uniform' is invalid: allowed values are 'kmeans', 'normal'"),
    ({"lookup_dim": 8}, "parameter lookup_dim=8 is invalid: expected fewer than latent_dim=8"),
    ({"fsq_levels": [4, 4]}, "parameter fsq_levels=[4, 4] is invalid: their product must be codebook_size=64"),
    ({"fsq_levels": [2, 32]}, "parameter fsq_levels=2 is invalid: expected an integer >= 3"),
    ({"fsq_levels": []}, "parameter fsq_levels=[] is invalid: expected a list of integers >= 3"),
    ({"warmup_fraction": 0.001}, "parameter warmup_fraction=0.001 is invalid: it leaves no warm-up"),
    ({"restart_threshold": -1}, "parameter restart_threshold=-1 is invalid"),
    ({"device": "tpu"}, "parameter device='tpu' is invalid"),
])
def test_an_invalid_parameter_is_refused_by_name(namespace, message):
    with pytest.raises(nbk.ParameterError, match=re.escape(message)):
        wf.Parameters.from_notebook(namespace)


def test_the_full_profile_takes_other_seeds_longer_training_both_starts_and_more_timed_blocks():
    quick, full = wf.Parameters(), wf.Parameters.from_notebook({"profile": "full", "steps": 100})
    assert (quick.seeds, quick.steps, quick.starts, quick.cost_blocks) == (list(range(10)), 300, ["kmeans"], 6)
    assert (full.seeds, full.steps, full.cost_blocks) == (list(range(10, 20)), 400, 20)
    assert full.starts == ["kmeans", "normal"]
    assert full.warmup_steps == 200 and full.to_dict()["fsq_levels"] == [4, 4, 4]
    # optimizer steps: 4x longer, and the 8 start-bound remedies twice (3 are start-free)
    assert wf.work_ratio(quick) == pytest.approx(4 * 19 / 11) and wf.work_ratio(full) == 1.0


def test_every_remedy_changes_the_same_base_run_and_start_free_ones_are_trained_once():
    params = wf.Parameters(seeds=[0, 1], starts=["kmeans", "normal"])
    configs = wf.run_configs(params)
    assert len(configs) == 2 * 2 * len(wf.ORDER) * 2
    assert len(set(configs.values())) == 2 * (len(wf.START_FREE) + 2 * (len(wf.ORDER) - len(wf.START_FREE))) * 2
    plain = configs[("digits", "normal", wf.BASELINE, 1)]
    assert (plain.quantizer.init, plain.quantizer.init_scale, plain.train.seed) == ("normal", 1e-3, 1)
    deferred = configs[("gaussian_mixture", "kmeans", wf.DEFER, 0)]
    assert (deferred.train.schedule, deferred.train.warmup_steps, deferred.data.dim) == ("deferred", 150, 8)
    fsq = wf.remedy_config(params, "digits", "normal", wf.FSQ)
    assert fsq.quantizer.kind == "fsq" and fsq == wf.remedy_config(params, "digits", "kmeans", wf.FSQ)
    for config in configs.values():
        assert (config.quantizer.codebook_size, config.train.steps, config.model.width) == (64, 300, 128)


def _panel(medians: dict[str, dict[str, float]]) -> pd.DataFrame:
    """A median_table of one panel: every remedy of ORDER, three seeds at its median +- 1% per metric."""
    rows = [{"condition": r, **{m: v * f for m, v in medians.get(r, medians[wf.BASELINE]).items()}}
            for r in wf.ORDER for f in (0.99, 1.0, 1.01)]
    return median_table(pd.DataFrame(rows), ["perplexity", "utilization", "recon_error", "embed_effective_dim"])


def test_findings_follow_the_criteria_fixed_before_the_run():
    collapsed = {"perplexity": 10.0, "utilization": 0.3, "recon_error": 1.0, "embed_effective_dim": 3.0}
    board = _panel({wf.BASELINE: collapsed,
                    wf.DEFER: {"perplexity": 50.0, "utilization": 0.95, "recon_error": 0.5, "embed_effective_dim": 6.0},
                    "EMA codebook": {"perplexity": 40.0, "utilization": 1.0, "recon_error": 0.8,
                                     "embed_effective_dim": 3.0},
                    wf.FSQ: {"perplexity": 60.0, "utilization": 1.0, "recon_error": 2.0, "embed_effective_dim": 3.0}})
    found = wf.panel_findings(board, codebook_size=64, fixed_share=0.5, fixed_utilization=0.9)
    assert found["fix_tokens"] == ["EMA codebook", wf.DEFER, wf.FSQ]
    assert found["fix_embeddings"] == [wf.DEFER]
    assert found["cost_reconstruction"] == [wf.FSQ]
    assert found["worse_than_deferred"] == ["EMA codebook", wf.FSQ]
    assert found["by_recon"][:2] == [wf.DEFER, "EMA codebook"] and found["by_recon"][-1] == wf.FSQ
    text = wf.panel_text(board, found)
    assert (text["defer_rank"], text["defer_rank_fixers"], text["n_fix_tokens"]) == ("1 of 11", "1 of 3", "3")
    assert text["base_ppl"] == "10 [9.90, 10.1]" and text["cost_recon"] == wf.FSQ
    assert wf.names([]) == "none"


def test_step_cost_texts_quote_every_ratio_and_deferreds_as_the_noise():
    record = lambda ratio: {"ratio": ratio, "ratio_low": ratio - 0.1, "ratio_high": ratio + 0.1,  # noqa: E731
                            "plain_s_per_step": 0.00378, "clock": "process cpu"}
    costs = wf.StepCosts({"EMA codebook": record(1.02), wf.DEFER: record(0.97), "rotation trick": record(1.5)}, 7.0)
    values = wf.cost_values(costs)
    assert values["cost_dearest"] == "rotation trick (1.50×)"
    assert values["cost_noise"] == "0.97× [0.87, 1.07]" and values["plain_ms"] == "3.78"
    assert values["cost_list"].startswith("EMA codebook 1.02× [0.92, 1.12]; ")
    assert wf.cost_text(wf.Parameters(), costs) == ("step costs: 6 blocks of 10 steps per arm on the mixture, "
                                                   "clock: process cpu; plain VQ 3.78 ms per step")
    assert np.isclose(costs.wall_s, 7.0)
