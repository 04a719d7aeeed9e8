"""Chapter 6's module: its parameter model, its jobs, and the tables, claim values and prose it derives from
the per-job frame (on a small made-up frame: nothing here trains)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from vqstudy.chapters import generation_diversity as gd
from vqstudy.data import Dataset
from vqstudy.notebook import ParameterError
from vqstudy.results import Verdict


def test_an_invalid_parameter_is_named_in_the_error():
    with pytest.raises(ParameterError, match="parameter n_samples=5 is invalid"):
        gd.Parameters(n_samples=5)
    with pytest.raises(ParameterError, match="parameter dataset='imagenet'"):
        gd.Parameters(dataset="imagenet")
    with pytest.raises(ParameterError, match="parameter test_fraction=1.0"):
        gd.Parameters(test_fraction=1.0)
    with pytest.raises(ParameterError, match="parameter data_root=None is invalid: dataset='cifar10' needs"):
        gd.Parameters(dataset="cifar10")
    with pytest.raises(ParameterError, match="parameter prior_heads=3 is invalid: must divide prior_width=32"):
        gd.Parameters(prior_heads=3)
    with pytest.raises(ParameterError, match="parameter profile='huge'"):
        gd.Parameters.from_notebook({"profile": "huge"})


def test_the_full_profile_takes_twenty_other_seeds_four_times_the_training_and_five_times_the_samples():
    full = gd.Parameters.from_notebook({"profile": "full", "steps": 100})
    assert full.seeds == list(range(10, 30))
    assert (full.steps, full.prior_steps, full.classifier_steps, full.n_samples) == (400, 1200, 1200, 2000)
    assert gd.work_ratio(full) == 1.0
    assert gd.work_ratio(gd.Parameters()) == 8.0   # 20 / 10 seeds, 4 times the steps


def test_both_tokenizers_of_a_seed_share_everything_but_the_schedule():
    params = gd.Parameters(seeds=[3, 5], steps=40)
    jobs = gd.tokenizer_configs(params)
    assert [(name, seed) for name, seed, _ in jobs] == [(gd.SHRUNK, 3), (gd.SHRUNK, 5), (gd.HEALTHY, 3),
                                                       (gd.HEALTHY, 5)]
    shrunk, healthy = jobs[0][2], jobs[2][2]
    assert (shrunk.train.schedule, shrunk.train.warmup_steps) == ("joint", 0)
    assert (healthy.train.schedule, healthy.train.warmup_steps, healthy.train.steps) == ("deferred", 20, 40)
    assert shrunk.replace(train={"schedule": "deferred", "warmup_steps": 20}) == healthy
    assert shrunk.quantizer.codebook_size == 512 and shrunk.data.name == "digits"


def _frame() -> pd.DataFrame:
    rows = []
    arms = ((gd.SHRUNK, (2.0, 2.2, 2.1), (5.0, 4.0, 6.0)), (gd.HEALTHY, (2.5, 2.4, 2.6), (4.5, 4.5, 4.5)))
    for name, diversity, fd in arms:
        for seed, (d, f) in enumerate(zip(diversity, fd)):
            rows.append({"tokenizer": name, "seed": seed, "recon MSE": 0.01, "perplexity": 100.0 + seed,
                         "utilization": 0.5, "cosine spread": 0.2, "r-FD": 1.0, "prior NLL (held-out)": 4.0,
                         "codes in samples": 80.0, "diversity": d, "g-FD": f, "class entropy": 2.0,
                         "classes covered": 10, "histogram": [1, 3, 0]})
    return pd.DataFrame(rows)


def _judge() -> gd.Judge:
    images = Dataset(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), "test", "digits")
    real = {"diversity": 3.0, "FD": 0.5, "class_entropy": 1.1, "classes_covered": 3}
    return gd.Judge("made up", images, images, 3, None, 0.9, torch.zeros(4, 16), 4, real)


def test_claim_values_pair_the_tokenizers_by_seed():
    shrunk, healthy = gd.claim_values(_frame())["C7-diversity"]
    assert shrunk == {0: 2.0, 1: 2.2, 2: 2.1} and healthy == {0: 2.5, 1: 2.4, 2: 2.6}
    evidence = gd.claim_evidence(_frame(), _judge())
    assert "g-FD 5 (shrunk) vs 4.5 (healthy), higher for the shrunk tokenizer at 2 of 3 seeds" in evidence


def test_class_shares_divide_each_jobs_histogram_by_its_samples():
    shares = gd.class_shares(_frame())
    assert len(shares) == 6 * 3
    assert shares["share"].tolist()[:3] == [0.25, 0.75, 0.0]


def test_the_tables_end_with_the_real_images_and_the_papers_rows():
    table = gd.generator_table(_frame(), _judge().real)
    assert list(table.index) == [gd.SHRUNK, gd.HEALTHY, "real held-out images"]
    assert table.loc["real held-out images", "classes covered"] == "3"
    side = gd.paper_table(_frame(), "digits")
    assert side.loc["paper: VAR, ODIR (Table 3)", "pixel dist. change"] == "-1.6%"
    assert side.index[-1] == "ours: digits, g-FD, 3 seeds"


def test_the_prose_gets_strings_as_the_notebook_formatted_them():
    verdict = Verdict("C7", "statement", "inconclusive", "evidence", {},
                      [{"effect": 0.97, "low": 0.955, "high": 0.99, "threshold": 49.01 / 49.83}], 0.64)
    texts = gd.chapter_text(verdict, _frame(), _judge(), gd.Parameters(seeds=[0, 1, 2]))
    assert all(isinstance(text, str) for text in texts.values())
    assert texts["c7_pct"] == "-3.0%" and texts["c7_threshold"] == "0.984" and texts["c7_seeds"] == "3"
    assert texts["c7_paper_div"] == "-6.0% (MaskGIT, ImageNet-100), -6.9% (VAR, ImageNet-100), -1.6% (VAR, ODIR)"
    assert texts["c7_fd_higher"] == "2 of 3" and texts["c7_util_shrunk"] == "50%" and texts["c7_ent_ideal"] == "1.1"
