"""vqstudy: an executable study of representation collapse in vector quantization.

The book's notebooks, the command line and the tests all call these functions.

Layers, bottom up. A module imports only from its own layer or below, never
in a cycle, and no module imports this package facade (``vqstudy``) itself;
``tests/test_layers.py`` checks every import, those inside functions too.

0. ``_version``, ``numerics``, ``io``, ``executors``, ``config``, ``repro``: leaves (version, numeric
   settings, file I/O, where jobs run, run configs, determinism and provenance)
1. ``data``, ``models``, ``quantize``, ``diagnostics``, ``analysis``: data sets, networks, the quantizer
   and the collapse measures
2. ``train``, ``interop``: training one run (ours, or vector-quantize-pytorch's)
3. ``generation``, ``sweep``, ``tables``, ``plots``: many runs and their presentation
4. ``notebook``, ``book``: what a chapter needs, and the book built from the chapters
5. ``cli``: the command line; it registers every subcommand, and nothing imports it
"""
from ._version import __version__

from .config import DataConfig, ModelConfig, QuantizerConfig, RunConfig, TrainConfig
from .data import Dataset, gaussian_mixture, load_cifar10, load_dataset, load_digits, load_mnist5k, train_test_split
from .diagnostics import diagnose, scalar_metrics
from .quantize import VectorQuantizer, initial_codebook, kmeans, nearest_code
from .train import RunResult, VQAutoencoder, evaluate, train

__all__ = [
    "DataConfig", "ModelConfig", "QuantizerConfig", "RunConfig", "TrainConfig",
    "Dataset", "gaussian_mixture", "load_cifar10", "load_dataset", "load_digits", "load_mnist5k",
    "train_test_split", "diagnose", "scalar_metrics", "VectorQuantizer", "initial_codebook", "kmeans",
    "nearest_code", "RunResult", "VQAutoencoder", "evaluate", "train",
]
