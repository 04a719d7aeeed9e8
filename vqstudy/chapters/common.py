"""What several chapters share: the run config of the mixture's MLP (chapters 2 and 4), and the parameters
and run config of the small convolutional tokenizer that chapters 5 (codebook size) and 6 (generation
diversity) train on images."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import notebook as nbk
from ..config import RunConfig
from ..notebook import check_choice, check_fraction, check_int, param

def mixture_config(data_dim: int, codebook_size: int, steps: int, device: str) -> RunConfig:
    """The mixture with an MLP of two hidden layers of 128 units, code dimension = data dimension, evaluated
    once at the end: the set-up whose codebook init or schedule chapters 2 and 4 change."""
    return RunConfig().replace(
        data={"dim": data_dim},
        model={"latent_dim": data_dim, "depth": 2, "width": 128},
        quantizer={"codebook_size": codebook_size},
        train={"steps": steps, "eval_every": steps, "device": device},
    )


IMAGE_DATASETS = ("digits", "mnist5k", "cifar10")


@dataclass(frozen=True)
class ImageTokenizerParameters(nbk.RunParameters):
    """The data set and the conv VQ-VAE of an image chapter; a chapter adds its seeds, steps and the rest."""
    dataset: str = param("digits", check_choice, allowed=IMAGE_DATASETS)
    data_root: str | None = param(None)
    test_fraction: float = param(0.2, check_fraction)
    width: int = param(32, check_int)
    depth: int = param(0, check_int, low=0)
    latent_dim: int = param(8, check_int)
    downsample: int = param(1, check_int)
    batch_size: int = param(128, check_int)

    def check_relations(self) -> None:
        if self.dataset == "cifar10" and not (isinstance(self.data_root, str) and self.data_root):
            raise self.invalid("data_root", "dataset='cifar10' needs the folder 'cifar-10-batches-py'")


def tokenizer_config(params: ImageTokenizerParameters, steps: int, **quantizer: Any) -> RunConfig:
    """The conv tokenizer's run config from the parameters: held-out split, evaluated once at the end."""
    return RunConfig().replace(
        data={"name": params.dataset, "root": params.data_root, "test_fraction": params.test_fraction},
        model={"kind": "conv", "depth": params.depth, "width": params.width, "latent_dim": params.latent_dim,
               "downsample": params.downsample},
        quantizer=quantizer,
        train={"steps": steps, "eval_every": steps, "batch_size": params.batch_size, "device": params.device},
    )
