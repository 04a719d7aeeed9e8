"""vqstudy: an executable study of representation collapse in vector quantization.

The book's notebooks, the command line and the tests all call these functions.
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
