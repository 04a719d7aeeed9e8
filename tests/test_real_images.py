"""The real-image chapter's plan, baselines and measures, and the stored full run matching today's code."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vqstudy.chapters import real_images as ri
from vqstudy.claims import DEFERRED_MNIST, SHRUNK_MNIST
from vqstudy.data import Dataset, held_out_split

ROOT = Path(__file__).resolve().parents[1]
TINY = ri.Plan(codebook_sizes=(8,), seeds=(0, 1), steps=10, width=4, batch_size=16)


@pytest.mark.parametrize("field, value, message", [
    ("codebook_sizes", (), "codebook_sizes"), ("codebook_sizes", (256, 256), "codebook_sizes"),
    ("codebook_sizes", (1,), "plan.codebook_sizes"), ("seeds", (-1,), "plan.seeds"), ("steps", 5, "plan.steps"),
    ("warmup_fraction", 1.0, "plan.warmup_fraction"), ("batch_size", True, "plan.batch_size"),
])
def test_a_bad_plan_fails_naming_the_field(field, value, message):
    good = dict(codebook_sizes=(8,), seeds=(0,), steps=10)
    with pytest.raises(ValueError, match=message):
        ri.Plan(**{**good, field: value})


def test_the_plan_runs_the_judged_size_first_and_its_two_schedules_differ_only_in_the_schedule():
    plan = ri.Plan(codebook_sizes=(4096, 256, ri.JUDGED_SIZE), seeds=(3, 4), steps=100)
    keys = list(ri.plan_configs(plan))
    assert len(keys) == 3 * 2 * 2
    assert keys[:4] == [(ri.JUDGED_SIZE, SHRUNK_MNIST, 3), (ri.JUDGED_SIZE, SHRUNK_MNIST, 4),
                        (ri.JUDGED_SIZE, DEFERRED_MNIST, 3), (ri.JUDGED_SIZE, DEFERRED_MNIST, 4)]
    assert [k for k, _, _ in keys[4::4]] == [256, 4096]
    shrunk, deferred = ri.plan_configs(plan)[(256, SHRUNK_MNIST, 4)], ri.plan_configs(plan)[(256, DEFERRED_MNIST, 4)]
    assert (shrunk.train.schedule, shrunk.quantizer.init, shrunk.train.steps) == ("joint", "kmeans", 100)
    assert (deferred.train.schedule, deferred.train.warmup_steps, deferred.train.steps) == ("deferred", 50, 100)
    assert shrunk.replace(train={"schedule": "deferred", "warmup_steps": 50}) == deferred  # nothing else differs
    with pytest.raises(ValueError, match="schedule"):
        ri.tokenizer_config(plan, 256, "joint", 0)


def test_patches_are_the_tokens_pixels_and_reassemble_the_image():
    images = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    rows = ri.patches(images)
    assert rows.shape == (2 * 49, 16)
    assert torch.equal(rows[1], images[0, 0, 0:4, 4:8].reshape(-1))      # second token of the first row
    assert torch.equal(rows[7], images[0, 0, 4:8, 0:4].reshape(-1))      # first token of the second row
    with pytest.raises(ValueError, match="30x28"):
        ri.patches(torch.zeros(1, 1, 30, 28), 4)


def _images(n: int, seed: int) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=gen)
    labels = torch.arange(n) % 2
    x[labels == 1] += 1.0
    return Dataset(x, labels, "test images", "test", (1, 8, 8))


def test_the_class_mean_baseline_is_the_error_of_each_images_class_mean():
    train_images, test_images = _images(40, 0), _images(10, 1)
    means = torch.stack([train_images.x[train_images.labels == c].double().mean(0) for c in (0, 1)])
    expected = float(((test_images.x.double() - means[test_images.labels]) ** 2).mean())
    assert ri.class_mean_mse(train_images, test_images) == pytest.approx(expected)


def test_the_patch_kmeans_baseline_improves_with_codes_and_is_exact_with_one_code_per_patch():
    train_images = _images(20, 0)
    errors = [ri.patch_kmeans_mse(train_images, train_images, k) for k in (1, 8, 64)]
    assert errors[0] > errors[1] > errors[2]
    assert ri.patch_kmeans_mse(train_images, train_images, len(ri.patches(train_images.x))) < 1e-10
    with pytest.raises(ValueError, match="n_codes"):
        ri.patch_kmeans_mse(train_images, train_images, 0)


def test_psnr_and_r_squared():
    assert ri.psnr(0.01) == pytest.approx(20.0)
    images = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert ri.r_squared(0.25, images) == pytest.approx(0.0)   # the per-pixel mean reconstructs nothing
    assert ri.r_squared(0.0, images) == pytest.approx(1.0)


def test_claim_values_pair_each_seed_and_take_c5_between_the_largest_and_smallest_codebook():
    rows = []
    for k, drop in ((256, 1.0), (ri.JUDGED_SIZE, 4.0), (4096, 8.0)):
        for seed in range(3):
            rows.append({"K": k, "schedule": DEFERRED_MNIST, "seed": seed, "perplexity": 100.0 + seed,
                         "recon_error": 0.010})
            rows.append({"K": k, "schedule": SHRUNK_MNIST, "seed": seed, "perplexity": (100.0 + seed) / drop,
                         "recon_error": 0.012})
    values = ri.claim_values(pd.DataFrame(rows))
    assert values["C5-growth"][0] == pytest.approx({0: 1 / 8, 1: 1 / 8, 2: 1 / 8})
    assert values["C5-growth"][1] == pytest.approx({0: 1.0, 1: 1.0, 2: 1.0})
    assert values["C6-perplexity"] == ({0: 25.0, 1: 25.25, 2: 25.5}, {0: 100.0, 1: 101.0, 2: 102.0})
    assert values["C8-mse"] == ({0: 0.010, 1: 0.010, 2: 0.010}, {0: 0.012, 1: 0.012, 2: 0.012})


def test_a_tiny_plan_trains_in_workers_and_returns_results_with_reconstructions():
    results, examples = ri.run_with_examples(TINY, n_examples=3, executor="inline")
    assert [r.config for r in results] == list(ri.plan_configs(TINY).values())
    frame = ri.run_frame(results)
    assert list(frame["schedule"]) == [SHRUNK_MNIST] * 2 + [DEFERRED_MNIST] * 2
    assert (frame["codes_used"] <= 8).all() and (frame["psnr"] > 0).all()
    pair = examples[(8, SHRUNK_MNIST, 0)]
    assert pair["originals"].shape == pair["reconstructions"].shape == (3, 1, 28, 28)
    assert 0.0 <= pair["reconstructions"].min() and pair["reconstructions"].max() <= 1.0
    _, test_images = held_out_split(results[0].config.data)
    np.testing.assert_array_equal(pair["originals"], test_images.x[:3].numpy())


def test_the_stored_full_run_is_complete_and_matches_the_configs_the_code_builds_today():
    """Any change to the full plan or to a config default changes the runs' keys: then this fails until
    the full profile is rerun (``vqstudy realimages``)."""
    frame = ri.load_full(ROOT)
    plan = ri.PLANS["full"]
    assert len(frame) == len(plan.codebook_sizes) * 2 * len(plan.seeds)
    assert set(frame["K"]) == set(plan.codebook_sizes) and set(frame["seed"]) == set(plan.seeds)
    assert not any(str(r).endswith("+dirty") for r in frame["git_revision"])
    assert ri.read_provenance(ROOT)["git_revision"] in set(frame["git_revision"])


def test_the_provenance_record_round_trips_and_a_missing_one_is_named(tmp_path):
    (tmp_path / ri.FULL_STORE).mkdir(parents=True)
    with pytest.raises(ValueError, match="provenance.json"):
        ri.read_provenance(tmp_path)
    ri.write_provenance(tmp_path, 0.0, 3600.0, 60, 2)
    record = ri.read_provenance(tmp_path)
    assert (record["started"], record["finished"], record["wall_time_s"]) == ("1970-01-01 00:00 UTC", "1970-01-01 01:00 UTC", 3600)
    assert record["runs_trained"] == 60 and record["workers"] == 2 and "cpu_model" in record
    assert ri._sessions(record) == "from 1970-01-01 00:00 UTC to 1970-01-01 01:00 UTC"


def test_a_resumed_part_keeps_every_session_in_its_provenance(tmp_path):
    (tmp_path / ri.FULL_STORE).mkdir(parents=True)
    ri.write_provenance(tmp_path, 0.0, 3600.0, 60, 2)
    ri.write_provenance(tmp_path, 7200.0, 9000.0, 20, 1)
    record = ri.read_provenance(tmp_path)
    assert [s["runs_trained"] for s in record["sessions"]] == [60, 20]
    assert (record["started"], record["finished"]) == ("1970-01-01 00:00 UTC", "1970-01-01 02:30 UTC")
    assert (record["runs_trained"], record["wall_time_s"], record["workers"]) == (80, 5400, 1)
    assert ri._sessions(record) == "in 2 sessions between 1970-01-01 00:00 UTC and 1970-01-01 02:30 UTC"


def test_the_full_profile_estimate_counts_the_notebooks_own_runs_not_the_stored_full_run():
    assert ri.work_ratio(ri.PLANS["quick"]) == pytest.approx(ri.PLANS["full"].steps / ri.PLANS["quick"].steps)
    assert ri.work_ratio(ri.Parameters(seeds=[0, 1]).plan) == pytest.approx(1500 / 400 / 2)


def test_the_secondary_arms_differ_from_the_shrunk_baseline_only_in_their_quantizer_and_are_labelled():
    configs = ri.remedy_configs(ri.PLANS["full"])
    assert len(configs) == 2 * len(ri.PLANS["full"].seeds)
    for (k, arm, seed), config in configs.items():
        base = ri.tokenizer_config(ri.PLANS["full"], k, SHRUNK_MNIST, seed)
        assert config.replace(quantizer=base.quantizer.to_dict()) == base
        assert ri.arm_of(config) == arm and k == ri.JUDGED_SIZE
    assert ri.arm_of(base) == SHRUNK_MNIST
    assert ri.arm_of(ri.tokenizer_config(ri.PLANS["full"], 256, DEFERRED_MNIST, 0)) == DEFERRED_MNIST
    with pytest.raises(ValueError, match="part='bogus'"):
        ri.part_configs("bogus")


def test_the_arms_table_and_text_compare_each_arm_with_deferred_seed_by_seed():
    rows = []
    for seed in range(10):
        for arm, ppl, mse in ((DEFERRED_MNIST, 400.0, 0.010), (SHRUNK_MNIST, 100.0, 0.012),
                              (ri.SMALL_INIT, 20.0, 0.03), (ri.EMA_RESTART, 400.0 * (1 + 0.01 * (seed % 3 - 1)), 0.010)):
            rows.append({"K": ri.JUDGED_SIZE, "schedule": arm, "seed": seed, "perplexity": ppl * (1 + seed / 100),
                         "codes_used": ppl, "recon_error": mse, "psnr": ri.psnr(mse), "git_revision": "0123456789abc",
                         "cpu_model": "AMD EPYC", "reproducible_numerics": False, "wall_time": 100.0})
    arms = pd.DataFrame(rows)
    table = ri.arms_table(arms)
    assert list(table.index) == list(ri.ARMS)
    assert table.loc[ri.SMALL_INIT, "Perplexity / deferred"].startswith("0.05 [")
    glued = ri.arms_text(arms, {"started": "a", "finished": "b", "git_revision": "0123456789abc", "runs_trained": 16})
    assert glued["arms_provenance"].endswith("20 runs from code revision 0123456789 on AMD EPYC, without the "
                                             "reproducible numerics; 16 of them trained from a to b.")
    text = glued["arms_text"]
    assert "uses fewer (0.05 [" in text and "with more (3 [" in text          # small init: far fewer codes, more error
    assert "uses about as many (" in text and "with about as much (1 [" in text  # EMA + restart: no clear difference
