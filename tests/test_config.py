import json

import pytest

from vqstudy import DataConfig, ModelConfig, QuantizerConfig, RunConfig, TrainConfig


def test_round_trip_through_json():
    cfg = RunConfig().replace(quantizer={"init": "uniform", "init_scale": 0.01},
                              train={"schedule": "deferred", "warmup_steps": 100, "seed": 3})
    again = RunConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(again.to_json()) == cfg.to_dict()


def test_missing_sections_take_defaults():
    assert RunConfig.from_dict({"train": {"steps": 10}}).quantizer == QuantizerConfig()


@pytest.mark.parametrize("build, words", [
    (lambda: DataConfig(name="imagenet"), ["data.name", "'imagenet'", "gaussian_mixture"]),
    (lambda: DataConfig(dim=0), ["data.dim", "0"]),
    (lambda: DataConfig(std=-1.0), ["data.std"]),
    (lambda: DataConfig(name="cifar10"), ["data.root"]),
    (lambda: DataConfig(test_fraction=1.0), ["data.test_fraction"]),
    (lambda: ModelConfig(depth=-1), ["model.depth"]),
    (lambda: ModelConfig(kind="transformer"), ["model.kind", "mlp", "conv"]),
    (lambda: ModelConfig(width=2.5), ["model.width", "integer"]),
    (lambda: QuantizerConfig(codebook_size=0), ["quantizer.codebook_size"]),
    (lambda: QuantizerConfig(init="zeros"), ["quantizer.init", "kmeans"]),
    (lambda: QuantizerConfig(update="sgd"), ["quantizer.update", "ema"]),
    (lambda: QuantizerConfig(ema_decay=1.0), ["quantizer.ema_decay"]),
    (lambda: QuantizerConfig(init_scale=0.0), ["quantizer.init_scale"]),
    (lambda: QuantizerConfig(beta=float("nan")), ["quantizer.beta", "finite"]),
    (lambda: TrainConfig(schedule="late"), ["train.schedule", "joint", "deferred"]),
    (lambda: TrainConfig(schedule="joint", warmup_steps=5), ["train.warmup_steps", "joint"]),
    (lambda: TrainConfig(schedule="deferred", steps=100, warmup_steps=100), ["train.warmup_steps", "steps=100"]),
    (lambda: TrainConfig(lr=0), ["train.lr"]),
    (lambda: TrainConfig(device="tpu"), ["train.device", "cuda"]),
    (lambda: TrainConfig(steps=True), ["train.steps"]),
    (lambda: RunConfig.from_dict({"trian": {}}), ["trian", "allowed sections"]),
    (lambda: RunConfig.from_dict({"train": {"step": 5}}), ["step", "allowed fields"]),
    (lambda: RunConfig(model=ModelConfig(kind="conv")), ["model.kind", "image data"]),
    (lambda: RunConfig(quantizer=QuantizerConfig(init_source="inputs")), ["init_source", "latent_dim"]),
    (lambda: RunConfig().replace(optim={"lr": 1}), ["optim"]),
])
def test_invalid_config_names_field(build, words):
    with pytest.raises(ValueError) as err:
        build()
    for word in words:
        assert word in str(err.value), (word, str(err.value))
