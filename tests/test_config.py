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


@pytest.mark.parametrize("quantizer", [
    {"kind": "fsq", "fsq_levels": [8, 5, 5], "codebook_size": 200, "init": "normal"},
    {"reparam": "affine", "distance": "cosine", "lookup_dim": 4, "gradient": "rotation", "restart_threshold": 1.0},
    {"reparam": "linear", "beta": 0.5},
    {"update": "ema", "distance": "cosine", "lookup_dim": 2},
])
def test_remedy_fields_round_trip_through_json(quantizer):
    cfg = RunConfig().replace(quantizer=quantizer)
    again = RunConfig.from_json(cfg.to_json())
    assert again == cfg and hash(again.quantizer) == hash(cfg.quantizer)
    assert json.loads(again.to_json()) == cfg.to_dict()
    assert again.quantizer.fsq_levels == tuple(quantizer.get("fsq_levels", ()))


def test_remedies_default_to_the_plain_quantizer():
    """Configs stored before the remedies existed load as the plain quantizer."""
    q = QuantizerConfig.from_dict({"codebook_size": 8, "update": "ema"})
    assert (q.kind, q.fsq_levels, q.reparam, q.distance, q.lookup_dim, q.gradient) == \
        ("vq", (), "none", "euclidean", None, "straight_through")


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
    (lambda: QuantizerConfig(kind="pq"), ["quantizer.kind", "'vq'", "'fsq'"]),
    (lambda: QuantizerConfig(kind="fsq"), ["quantizer.fsq_levels", "kind='fsq'"]),
    (lambda: QuantizerConfig(kind="fsq", fsq_levels=[4, 4]), ["quantizer.codebook_size=64", "16"]),
    (lambda: QuantizerConfig(kind="fsq", fsq_levels=[2] * 6), ["quantizer.fsq_levels=2", ">= 3"]),
    (lambda: QuantizerConfig(kind="fsq", fsq_levels=[4, 4.5]), ["quantizer.fsq_levels=4.5", "integer"]),
    (lambda: QuantizerConfig(fsq_levels="444"), ["quantizer.fsq_levels", "list of integers"]),
    (lambda: QuantizerConfig(fsq_levels=[4, 4, 4]), ["quantizer.fsq_levels", "kind='vq'"]),
    (lambda: QuantizerConfig(kind="fsq", fsq_levels=[4, 4, 4], update="ema"), ["quantizer.update", "fsq"]),
    (lambda: QuantizerConfig(kind="fsq", fsq_levels=[4, 4, 4], restart_threshold=1.0),
     ["quantizer.restart_threshold", "fsq"]),
    (lambda: QuantizerConfig(kind="fsq", fsq_levels=[4, 4, 4], gradient="rotation"), ["quantizer.gradient"]),
    (lambda: QuantizerConfig(kind="fsq", fsq_levels=[4, 4, 4], lookup_dim=2), ["quantizer.lookup_dim"]),
    (lambda: QuantizerConfig(reparam="orthogonal"), ["quantizer.reparam", "'affine'", "'linear'"]),
    (lambda: QuantizerConfig(reparam="linear", update="ema"), ["quantizer.update='ema'", "reparam='linear'"]),
    (lambda: QuantizerConfig(reparam="affine", update="ema"), ["quantizer.update='ema'", "reparam='affine'"]),
    (lambda: QuantizerConfig(reparam="linear", restart_threshold=1.0), ["quantizer.restart_threshold", "SimVQ"]),
    (lambda: QuantizerConfig(distance="manhattan"), ["quantizer.distance", "'euclidean'", "'cosine'"]),
    (lambda: QuantizerConfig(lookup_dim=0), ["quantizer.lookup_dim=0"]),
    (lambda: QuantizerConfig(lookup_dim=True), ["quantizer.lookup_dim=True"]),
    (lambda: QuantizerConfig(gradient="gumbel"), ["quantizer.gradient", "'straight_through'", "'rotation'"]),
    (lambda: RunConfig(quantizer=QuantizerConfig(kind="fsq", fsq_levels=[4, 4, 4]),
                       train=TrainConfig(schedule="deferred", warmup_steps=10)),
     ["train.reinit_at_switch", "fsq"]),
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


def test_merge_changes_composes_conditions_section_by_section():
    from vqstudy.config import merge_changes

    start = {"quantizer": {"init": "normal", "init_scale": 1e-3}}
    remedy = {"quantizer": {"update": "ema"}, "train": {"schedule": "deferred", "warmup_steps": 10}}
    merged = merge_changes(start, remedy, {"train": {"seed": 3, "warmup_steps": 20}})
    assert merged == {"quantizer": {"init": "normal", "init_scale": 1e-3, "update": "ema"},
                      "train": {"schedule": "deferred", "warmup_steps": 20, "seed": 3}}
    assert start == {"quantizer": {"init": "normal", "init_scale": 1e-3}}       # the parts are not modified
    cfg = RunConfig().replace(**merged)
    assert (cfg.quantizer.update, cfg.train.warmup_steps, cfg.train.seed) == ("ema", 20, 3)
    with pytest.raises(ValueError, match="unknown section 'optim'"):
        merge_changes({"optim": {"lr": 1.0}})
    with pytest.raises(ValueError, match="section 'train'"):
        merge_changes({"train": 5})


def test_schedule_change_gives_each_training_the_same_budget():
    from vqstudy import train
    from vqstudy.config import schedule_change
    from vqstudy.tables import evaluation

    base = RunConfig().replace(data={"n_per_cluster": 50}, quantizer={"codebook_size": 8},
                               train={"batch_size": 32, "eval_every": 5})
    joint = base.replace(train=schedule_change("joint", 10))
    deferred = base.replace(train=schedule_change("deferred", 10, 5))
    autoencoder = base.replace(train=schedule_change("autoencoder", 10))
    assert (joint.train.schedule, joint.train.steps) == ("joint", 10)
    assert (deferred.train.schedule, deferred.train.warmup_steps) == ("deferred", 5)
    run = train(autoencoder)
    ae = evaluation(run, "autoencoder")
    assert ae["step"] == 10 and not ae["quantized"]           # ten autoencoder steps, no VQ before
    assert all(phase == "ae" for phase in run.history["phase"][:10])
    with pytest.raises(ValueError, match="training"):
        schedule_change("ema", 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        schedule_change("deferred", 10, 10)
