"""Encoders and decoders whose capacity is set by two numbers: depth and width.

Depth 0 is a linear map: the low-capacity end of the embeddings-collapse
sweep. The latent (code) dimension is independent of the input dimension.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
ACTIVATION_LAYERS = tuple(_ACTIVATIONS.values())  # elementwise: they apply unchanged to stacked seeds


def mlp(in_dim: int, out_dim: int, depth: int, width: int, activation: str = "relu") -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units; depth 0 is one linear layer."""
    if depth == 0:
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    act = _ACTIVATIONS[activation]
    layers: list[nn.Module] = [nn.Linear(in_dim, width), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), act()]
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """Image (B, C, H, W) -> latent grid (B, H/2^s, W/2^s, latent_dim), channels last for the quantizer."""

    def __init__(self, channels: int, latent_dim: int, depth: int, width: int, downsample: int = 1,
                 activation: str = "relu"):
        super().__init__()
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        c_in = channels
        for _ in range(downsample):
            layers += [nn.Conv2d(c_in, width, 4, stride=2, padding=1), act()]
            c_in = width
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1), act()]
        layers.append(nn.Conv2d(width, latent_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).permute(0, 2, 3, 1)


class ConvDecoder(nn.Module):
    """Latent grid (B, h, w, latent_dim) -> image (B, C, H, W)."""

    def __init__(self, channels: int, latent_dim: int, depth: int, width: int, downsample: int = 1,
                 activation: str = "relu"):
        super().__init__()
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, width, 3, padding=1), act()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1), act()]
        for _ in range(downsample):
            layers += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), act()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.permute(0, 3, 1, 2))


def build_autoencoder(cfg: ModelConfig, input_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder for inputs of ``input_shape`` (without the batch dimension)."""
    if cfg.kind == "mlp":
        in_dim = 1
        for s in input_shape:
            in_dim *= s
        enc = nn.Sequential(nn.Flatten(), mlp(in_dim, cfg.latent_dim, cfg.depth, cfg.width, cfg.activation))
        dec = nn.Sequential(mlp(cfg.latent_dim, in_dim, cfg.depth, cfg.width, cfg.activation),
                            nn.Unflatten(1, tuple(input_shape)))
        return enc, dec
    if len(input_shape) != 3:
        raise ValueError(f"the conv model needs image inputs (C, H, W), got shape {tuple(input_shape)}")
    c, h, w = input_shape
    if h % (2 ** cfg.downsample) or w % (2 ** cfg.downsample):
        raise ValueError(f"invalid model.downsample={cfg.downsample}: image {h}x{w} is not divisible by "
                         f"2^{cfg.downsample}")
    enc = ConvEncoder(c, cfg.latent_dim, cfg.depth, cfg.width, cfg.downsample, cfg.activation)
    dec = ConvDecoder(c, cfg.latent_dim, cfg.depth, cfg.width, cfg.downsample, cfg.activation)
    return enc, dec
