import pickle

import numpy as np
import pytest
import torch

from vqstudy import DataConfig, gaussian_mixture, load_cifar10, load_dataset, load_digits, load_mnist5k
from vqstudy.data import held_out_split, train_test_split


def test_gaussian_mixture_shape_labels_and_determinism():
    ds = gaussian_mixture(n_clusters=10, n_per_cluster=1000, dim=8, std=0.5, seed=3)
    assert ds.x.shape == (10_000, 8) and ds.x.dtype == torch.float32
    assert torch.equal(ds.labels, torch.arange(10).repeat_interleave(1000))
    assert torch.equal(ds.x, gaussian_mixture(10, 1000, 8, 0.5, seed=3).x)
    assert not torch.equal(ds.x, gaussian_mixture(10, 1000, 8, 0.5, seed=4).x)
    # within-cluster std is the requested std
    within = torch.stack([ds.x[ds.labels == k].std(0) for k in range(10)])
    assert within.mean().item() == pytest.approx(0.5, rel=0.05)
    assert "10 clusters" in ds.description


@pytest.mark.parametrize("kwargs, field", [({"dim": 0}, "dim"), ({"std": 0.0}, "std"),
                                           ({"n_clusters": 2.5}, "n_clusters"), ({"seed": -1}, "seed")])
def test_gaussian_mixture_validates(kwargs, field):
    with pytest.raises(ValueError, match=f"data.{field}"):
        gaussian_mixture(**kwargs)


def test_offline_real_data():
    digits = load_digits()
    assert digits.x.shape == (1797, 1, 8, 8) and 0 <= digits.x.min() and digits.x.max() <= 1
    assert digits.image_shape == (1, 8, 8) and digits.n_classes == 10
    mnist = load_mnist5k()
    assert mnist.x.shape == (5000, 1, 28, 28) and mnist.x.max() <= 1
    assert torch.equal(torch.bincount(mnist.labels), torch.full((10,), 500))
    assert load_dataset(DataConfig(name="digits")).x.shape == digits.x.shape


def _write_cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, size=n).tolist(), b"batch_label": b"test"}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh)
    return batch


def test_cifar10_loader_reads_python_batches(tmp_path):
    batches = [_write_cifar_batch(tmp_path / f"data_batch_{i}", 6, i) for i in range(1, 6)]
    test = _write_cifar_batch(tmp_path / "test_batch", 4, 9)
    ds = load_cifar10(tmp_path)
    assert ds.x.shape == (30, 3, 32, 32) and ds.image_shape == (3, 32, 32)
    first = batches[0][b"data"][0].reshape(3, 32, 32) / 255.0
    assert np.allclose(ds.x[0].numpy(), first)
    assert ds.labels.tolist() == sum((b[b"labels"] for b in batches), [])
    ts = load_cifar10(tmp_path, split="test")
    assert ts.labels.tolist() == test[b"labels"]


def test_cifar10_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_cifar10(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="malformed"):
        load_cifar10(tmp_path, split="test")
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(tmp_path, split="test")
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, split="valid")


def test_stratified_split_is_deterministic():
    ds = load_digits()
    tr, te = train_test_split(ds, 0.2, seed=0)
    assert len(tr) + len(te) == len(ds)
    tr2, te2 = train_test_split(ds, 0.2, seed=0)
    assert torch.equal(te.x, te2.x)
    assert torch.bincount(te.labels).min() >= 30
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(ds, 1.5)


def test_held_out_split_is_the_split_a_run_of_the_config_makes():
    cfg = DataConfig(name="digits", test_fraction=0.25, seed=3)
    train_part, test_part = held_out_split(cfg)
    expected_train, expected_test = train_test_split(load_dataset(cfg), 0.25, seed=3)
    assert torch.equal(train_part.x, expected_train.x) and torch.equal(test_part.labels, expected_test.labels)
    assert len(test_part) == len(expected_test) > 0
