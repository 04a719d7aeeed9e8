"""Seeds trained together equal the same seeds trained alone, bit for bit (under the pinned numerics)."""
from __future__ import annotations

import pytest
import torch

from vqstudy import numerics
from vqstudy.config import RunConfig
from vqstudy.seedbatch import batch_problem, train_seeds
from vqstudy.sweep import config_key, seed_batches
from vqstudy.train import train

BASE = RunConfig().replace(data={"n_per_cluster": 100}, model={"width": 32},
                           train={"steps": 60, "eval_every": 30, "batch_size": 64})
VARIANTS = {
    "small normal init, joint": {"quantizer": {"init": "normal", "init_scale": 1e-3}},
    "k-means init, joint": {},
    "EMA + dead-code restart": {"quantizer": {"update": "ema", "restart_threshold": 1.0, "restart_every": 20}},
    "deferred": {"train": {"schedule": "deferred", "warmup_steps": 30}},
    "depth 0, gelu, held-out split": {"model": {"depth": 0, "activation": "gelu"}, "data": {"test_fraction": 0.2}},
}

pinned_only = pytest.mark.skipif(not numerics.active(), reason="bitwise equality is promised under the pinned numerics")


@pinned_only
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_batched_seed_equals_the_seed_trained_alone(variant):
    configs = [BASE.replace(**VARIANTS[variant]).replace(train={"seed": s}) for s in (3, 0, 7)]
    assert batch_problem(configs[0]) is None
    together = train_seeds(configs, progress=False)
    for config, batched in zip(configs, together):
        alone = train(config, progress=False)
        assert batched.config == config
        assert batched.status == alone.status == "ok"
        assert batched.history == alone.history
        assert batched.evals == alone.evals
        for (name, a), b in zip(alone.model.state_dict().items(), batched.model.state_dict().values()):
            assert torch.equal(a, b), name


@pinned_only
def test_a_seed_does_not_depend_on_its_batch():
    configs = [BASE.replace(train={"seed": s}) for s in range(4)]
    pair, four = train_seeds(configs[:2], progress=False), train_seeds(configs, progress=False)
    assert [r.evals for r in pair] == [r.evals for r in four[:2]]
    assert pair[0].evals != pair[1].evals  # the seeds themselves differ


def test_a_seed_batch_must_differ_only_in_its_seeds():
    with pytest.raises(ValueError, match="differ only in train.seed"):
        train_seeds([BASE, BASE.replace(quantizer={"codebook_size": 32}, train={"seed": 1})])
    with pytest.raises(ValueError, match="distinct seeds"):
        train_seeds([BASE, BASE])
    with pytest.raises(ValueError, match="at least one"):
        train_seeds([])


@pytest.mark.parametrize("override, reason", [
    ({"quantizer": {"kind": "fsq", "fsq_levels": [3, 3], "codebook_size": 9}}, "quantizer.kind"),
    ({"quantizer": {"distance": "cosine"}}, "quantizer.distance"),
    ({"train": {"batch_size": 64}, "quantizer": {"chunk_size": 32}}, "chunk_size"),
])
def test_what_cannot_be_batched_says_why_and_trains_seed_by_seed(override, reason):
    config = BASE.replace(**override).replace(train={"steps": 4, "eval_every": 4})
    assert reason in batch_problem(config)
    results = train_seeds([config, config.replace(train={"seed": 1})], progress=False)
    assert [r.config.train.seed for r in results] == [0, 1]
    assert results[0].evals == train(config, progress=False).evals


def test_the_sweep_groups_seeds_of_one_configuration_and_keeps_both_workers_busy():
    configs = [BASE.replace(train={"seed": s}) for s in range(12)]
    configs += [BASE.replace(quantizer={"codebook_size": 32}, train={"seed": s}) for s in range(3)]
    todo = {config_key(c): c for c in configs}
    batches = seed_batches(todo, workers=2)
    assert sorted(len(b) for b in batches) == [1, 2, 6, 6]
    assert sorted(k for b in batches for k in b) == sorted(todo)
    for batch in batches:
        assert len({todo[k].quantizer.codebook_size for k in batch}) == 1
    assert max(len(b) for b in seed_batches(todo, workers=1)) == 10


def test_configs_that_cannot_be_batched_run_one_per_job_so_each_is_stored_when_done():
    unbatchable = BASE.replace(quantizer={"distance": "cosine"})
    todo = {config_key(c): c for c in [unbatchable.replace(train={"seed": s}) for s in range(4)]}
    assert sorted(len(b) for b in seed_batches(todo, workers=2)) == [1, 1, 1, 1]
