"""Chapter 1's module: its parameter model, its runs' layout, and the text it derives from a frame of measures."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from vqstudy import notebook as nbk
from vqstudy.chapters import synthetic_data as sd
from vqstudy.train import train


@pytest.mark.parametrize("namespace, message", [
    ({"primary_dim": 4}, "parameter primary_dim=4 is invalid: it must be one of dims=[2, 8, 32]"),
    ({"dims": [8, 8]}, "parameter dims=[8, 8] is invalid: entries must be distinct"),
    ({"dims": [1, 8]}, "parameter dims=[1, 8] is invalid: entry 1 is not an integer >= 2"),
    ({"plot_points": 50}, "parameter plot_points=50 is invalid: expected an integer >= 100"),
    ({"device": "gpu"}, "parameter device='gpu' is invalid: allowed values are 'cpu', 'cuda'"),
    ({"seeds": []}, "parameter seeds=[] is invalid: expected a list of at least 1 integers"),
])
def test_a_bad_parameter_is_named_with_what_is_allowed(namespace, message):
    with pytest.raises(nbk.ParameterError, match=re.escape(message)):
        sd.Parameters.from_notebook(namespace)


def test_dims_are_sorted_and_the_full_profile_replaces_its_presets():
    assert sd.Parameters(dims=[32, 2, 8]).dims == [2, 8, 32]
    full = sd.Parameters.from_notebook({"profile": "full", "ae_steps": 100})
    assert (full.seeds, full.ae_steps, full.secondary_seeds) == (list(range(10, 30)), 400, 5)
    assert (full.dims, full.plot_points) == ([2, 4, 8, 16, 32, 64], 3000)
    assert sd.work_ratio(sd.Parameters()) == 8.0    # twice the seeds, four times the warm-up
    assert sd.work_ratio(full) == 1.0


def test_seed_batches_put_the_primary_dimension_first_and_keep_every_worker_busy():
    params = sd.Parameters()
    batches = sd.seed_batches(params)
    layout = [(b[0].data.dim, [c.train.seed for c in b]) for b in batches]
    assert layout == [(8, [0, 1, 2, 3, 4]), (8, [5, 6, 7, 8, 9]), (2, [0, 1]), (32, [0, 1])]
    config = batches[0][0]
    assert (config.model.latent_dim, config.train.schedule, config.train.warmup_steps, config.train.steps) == \
        (8, "deferred", 750, 751)


def _frame() -> pd.DataFrame:
    """Measures of two seeds at dims 2 and 8: the untrained encoder finds one mode fewer at 8-D on seed 1."""
    rows = []
    for dim in (2, 8):
        for seed in (0, 1):
            for encoder in sd.ENCODERS:
                fewer = encoder == "untrained" and dim == 8 and seed == 1
                rows.append({"dim": dim, "seed": seed, "encoder": encoder, "variance ratio": 0.01 if encoder ==
                             "untrained" else 1.0, "effective dim": float(dim), "participation ratio": 1.5,
                             "Fisher ratio": 10.0, "modes found": 9 - fewer, "silhouette": 0.5})
    return pd.DataFrame(rows)


def test_the_claim_pairs_modes_by_seed_and_the_evidence_reads_the_means():
    frame, params = _frame(), sd.Parameters(dims=[2, 8], seeds=[0, 1])
    assert sd.claim_values(frame, 8) == {"C3-modes": ({0: 9.0, 1: 8.0}, {0: 9.0, 1: 9.0})}
    means = sd.encoder_means(frame)
    assert sd.claim_evidence(means, params) == (
        "Secondary, untrained against trained: variance ratio at 8-D: 0.0100 against 1 (a shrinkage by "
        "construction of the default init); Fisher ratio at 8-D: 10 against 10; effective dim at 8-D: 8 against 8; "
        "modes found at 2-D: 9 against 9.")
    assert sd.means_record(means)["untrained, dim 8"]["modes found"] == 8.5


def test_a_short_run_rebuilds_its_untrained_encoder_and_measures_the_vq_step(tiny_config):
    config = tiny_config.replace(data={"dim": 4}, model={"latent_dim": 4},
                                 train={"schedule": "deferred", "warmup_steps": 20, "steps": 21, "eval_every": 21})
    run = train(config, progress=False)
    outputs, move = sd.encoder_outputs(run, "cpu", ae_steps=20)
    assert set(outputs) == set(sd.ENCODERS) and outputs["untrained"].shape == outputs["trained"].shape
    assert 0 <= move < 1
