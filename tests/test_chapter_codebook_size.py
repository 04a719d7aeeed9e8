"""Chapter 5's module: its parameter model, the sweep it builds, and its tables and prose from a tiny frame."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vqstudy import notebook as nbk  # noqa: E402
from vqstudy.chapters import codebook_size as cs  # noqa: E402
from vqstudy.data import Dataset  # noqa: E402
from vqstudy.train import train  # noqa: E402


@pytest.mark.parametrize("namespace, message", [
    ({"profile": "bogus"}, "parameter profile='bogus' is invalid: allowed values are 'quick', 'full'"),
    ({"log2_sizes": [3, 5]}, "parameter log2_sizes=[3, 5] is invalid: expected a list of at least 3 integers"),
    ({"log2_sizes": [0, 3, 5]}, "parameter log2_sizes=[0, 3, 5] is invalid: entry 0 is not an integer >= 1"),
    ({"seeds": []}, "parameter seeds=[] is invalid"),
    ({"steps": 5}, "parameter steps=5 is invalid: expected an integer >= 10"),
    ({"dataset": "imagenet"}, "parameter dataset='imagenet' is invalid: allowed values are 'digits', 'mnist5k', 'cifar10'"),
    ({"dataset": "cifar10"}, "parameter data_root=None is invalid: dataset='cifar10' needs the folder 'cifar-10-batches-py'"),
    ({"test_fraction": 1.0}, "parameter test_fraction=1.0 is invalid: expected a number strictly between 0 and 1"),
    ({"depth": -1}, "parameter depth=-1 is invalid: expected an integer >= 0"),
    ({"width": 0}, "parameter width=0 is invalid: expected an integer >= 1"),
    ({"device": "tpu"}, "parameter device='tpu' is invalid: allowed values are 'cpu', 'cuda'"),
])
def test_an_invalid_parameter_stops_the_chapter_naming_it(namespace, message):
    with pytest.raises(nbk.ParameterError, match=re.escape(message)):
        cs.Parameters.from_notebook(namespace)


def test_the_sizes_are_sorted_and_the_full_profile_presets_more_seeds_steps_and_sizes():
    params = cs.Parameters.from_notebook({"log2_sizes": [9, 3, 5]})
    assert (params.log2_sizes, params.sizes) == ([3, 5, 9], [8, 32, 512])
    assert cs.Parameters.from_notebook({"dataset": "cifar10", "data_root": "/data"}).data_root == "/data"
    full = cs.Parameters.from_notebook({"profile": "full", "steps": 100, "seeds": [7]})
    assert (full.seeds, full.steps, full.log2_sizes) == (list(range(5)), 400, list(range(4, 13)))
    assert cs.work_ratio(cs.Parameters()) == pytest.approx(5 / 3 * 4 * 9 / 4)
    assert cs.work_ratio(full) == 1.0


def test_the_sweep_runs_every_size_schedule_and_seed_and_the_schedules_differ_only_in_the_schedule():
    params = cs.Parameters(seeds=[4, 5], steps=100, log2_sizes=[5, 3, 4])
    configs, labels = cs.sweep_configs(params, cs.base_config(params))
    assert len(configs) == 3 * 2 * 2 and labels[:4] == [cs.JOINT, cs.JOINT, cs.DEFERRED, cs.DEFERRED]
    assert [c.quantizer.codebook_size for c in configs[::4]] == [8, 16, 32]
    joint, deferred = configs[0], configs[2]
    assert (joint.train.seed, deferred.train.seed, joint.train.steps) == (4, 4, 100)
    assert (deferred.train.schedule, deferred.train.warmup_steps) == ("deferred", 50)
    assert joint.replace(train={"schedule": "deferred", "warmup_steps": 50}) == deferred   # nothing else differs


def _frame(sizes=(8, 64), seeds=(0, 1, 2)) -> pd.DataFrame:
    """Runs where shrunk uses about half deferred's codes at K = 64 and reconstructs about 1.5 times worse there;
    at K = 8 it reconstructs better than deferred on seeds 0 and 1, worse on seed 2."""
    rows = []
    for k in sizes:
        for seed in seeds:
            wobble = 1 + 0.01 * seed
            shrink = 0.5 if k == 64 else 1.0
            rows.append({"condition": cs.JOINT, "seed": seed, "K": k, "perplexity": shrink * k * wobble,
                         "recon_error": 0.03 * wobble * (1.5 if k == 64 else 1.0), "utilization": shrink,
                         "codebook_centered_cosine_spread": 0.8})
            rows.append({"condition": cs.DEFERRED, "seed": seed, "K": k, "perplexity": 0.9 * k,
                         "recon_error": 0.0305, "utilization": 1.0, "codebook_centered_cosine_spread": 1.0})
    df = pd.DataFrame(rows)
    df["log2 K"] = np.log2(df["K"]).astype(int)
    return df


def test_the_paired_ratios_and_their_table_pair_each_seed():
    df = _frame()
    ratios = cs.paired_ratios(df, [8, 64])
    assert ratios[64]["perplexity"][0] == pytest.approx(0.5 / 0.9 * np.exp(np.mean(np.log([1, 1.01, 1.02]))))
    assert ratios[8]["perplexity"][1] < ratios[8]["perplexity"][0] < ratios[8]["perplexity"][2]
    pairs = cs.seed_pairs(df)
    per_seed = cs.per_seed_ratios(pairs)
    assert list(per_seed.columns) == ["K", "seed", "perplexity", "recon_error"] and len(per_seed) == 6
    table = cs.ratio_table(ratios, pairs, per_seed)
    assert list(table.index) == [8, 64]
    assert list(table["seeds with deferred better recon"]) == ["1/3", "3/3"]
    assert table.loc[64, "perplexity deferred"] == "57.6"
    assert list(cs.metric_table(df).columns) == cs.METRICS


def test_the_prose_values_come_from_the_frame():
    df = _frame()
    ratios = cs.paired_ratios(df, [8, 64])
    per_seed = cs.per_seed_ratios(cs.seed_pairs(df))
    full = Dataset(torch.zeros(20, 1, 8, 8), torch.arange(20) % 10, "tiny digits: 20 images", "tiny", (1, 8, 8))
    images = cs.Images(full, full, full, grid=4)
    params = cs.Parameters(seeds=[0, 1, 2], log2_sizes=[3, 6, 4])
    values = cs.prose_values(params, images, df, ratios, per_seed)
    assert (values["c5_data"], values["c5_kmin"], values["c5_kmax"]) == ("tiny digits", "8", "64")
    assert (values["c5_util_joint"], values["c5_util_deferred"], values["c5_ppl_trend"]) == ("50%", "100%", "falls")
    assert values["c5_large_k_word"] == cs.SIDE_WORDS["above"]      # shrunk worse: deferred reconstructs better
    assert values["c5_small_k_seeds"] == "2"                        # seeds 0, 1 at K = 8: deferred reconstructs worse
    assert (values["c5_image_size"], values["c5_positions"]) == ("8×8", "320")
    assert all(isinstance(v, str) for v in values.values())
    numbers = cs.numbers(params, cs.base_config(params), df, ratios)
    assert set(numbers["summary"]) == {f"{c} | K={k}" for c in cs.SCHEDULES for k in (8, 64)}
    assert list(numbers["ratio_shrunk_to_deferred"]) == ["8", "64"]


def test_the_reconstruction_figure_draws_one_row_per_entry_in_grey_or_colour():
    grey, colour = torch.rand(10, 1, 8, 8), torch.rand(10, 3, 8, 8)
    for images in (grey, colour):
        fig = cs.reconstruction_figure([("originals", images), ("K = 8\nMSE 0.01", images)])
        assert len(fig.axes) == 20 and fig.axes[0].get_ylabel() == "originals"
        plt.close(fig)
    rows = cs.first_of_each_class(Dataset(torch.rand(30, 1, 8, 8), torch.arange(30) % 10, "t", "t", (1, 8, 8)))
    assert rows.shape == (10, 1, 8, 8)


def test_a_retrained_run_is_the_sweeps_run():
    params = cs.Parameters(seeds=[0], steps=10, log2_sizes=[1, 2, 3], width=4, batch_size=16)
    configs, labels = cs.sweep_configs(params, cs.base_config(params))
    runs = [train(c, progress=False) if c.quantizer.codebook_size == 8 else None for c in configs]
    shown = cs.retrain_shown(configs, labels, runs, k=8, seed=0)
    assert list(shown) == [(8, cs.JOINT), (8, cs.DEFERRED)]
    rows = cs.reconstruction_rows(shown, cs.first_of_each_class(cs.load_images(configs[0]).test), "cpu")
    assert [r[0].split("\n")[0] for r in rows] == ["held-out originals", "K = $2^{3}$, joint", "K = $2^{3}$, deferred"]
