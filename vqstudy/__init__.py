"""vqstudy: an executable study of representation collapse in vector quantization.

The book's notebooks, the command line and the tests all call these functions.

Layers, bottom up. A module imports only from its own layer or below, never
in a cycle, and no module imports this package facade (``vqstudy``) itself;
``tests/test_layers.py`` checks every import, those inside functions too. The modules of a
subpackage (``book.*``) are in the subpackage's layer and import each other freely, never in a cycle.

0. ``_version``, ``numerics``, ``testing``, ``io``, ``executors``, ``config``, ``repro``: leaves (version,
   numeric settings and the test processes' set-up, file I/O, where jobs run, run configs, determinism
   and provenance)
1. ``data``, ``models``, ``quantize``, ``diagnostics``, ``health``, ``analysis``: data sets, networks, the quantizer
   and the collapse measures
2. ``train``, ``seedbatch``, ``interop``: training one run (ours, or vector-quantize-pytorch's), or several
   seeds of one run as one batched computation
3. ``generation``, ``sweep``, ``report``, ``tables``, ``style``, ``plots``, ``claims``, ``results``: many
   runs, their presentation, the pre-registered claims they are judged by, and a chapter's results file
   (its fields, writing, reading, checking)
4. ``notebook``, ``chapters`` (one module per chapter, ``chapters.synthetic_data``, ``chapters.tokens_collapse``,
   ``chapters.embeddings_collapse``, ``chapters.fixes``, ``chapters.codebook_size``,
   ``chapters.generation_diversity``, ``chapters.vector_quantize_pytorch``, ``chapters.which_fix``,
   ``chapters.real_images``, and ``chapters.common``, what several share), ``book`` (the package ``book.common``, ``book.paper``, ``book.toc``,
   ``book.stored``, ``book.results``, ``book.markdown``, ``book.cost``, ``book.pages``, ``book.performance``,
   ``book.sphinxext``, ``book.build``, ``book.commands``), ``bibstyle``, ``publish``: what a chapter needs
   (its parameter model, set-up and verdicts; its module holds everything its notebook runs, shows and
   says), the book built from the chapters, and where it is published
5. ``cli``: the command line; it registers every subcommand, and nothing imports it
"""
import sys
import types

from ._version import __version__

from . import numerics as _numerics

_numerics.pin_from_environment()  # before torch/numpy load, when VQSTUDY_REPRODUCIBLE=1 asks for it

# The public API, imported on first use: ``from vqstudy import numerics`` must be able to pin the
# numeric libraries before anything here imports torch or numpy.
_PUBLIC = {
    "config": ("DataConfig", "ModelConfig", "QuantizerConfig", "RunConfig", "TrainConfig"),
    "data": ("Dataset", "gaussian_mixture", "load_cifar10", "load_dataset", "load_digits", "load_mnist5k",
             "train_test_split"),
    "diagnostics": ("diagnose", "scalar_metrics"),
    "quantize": ("VectorQuantizer", "initial_codebook", "kmeans", "nearest_code"),
    "train": ("RunResult", "VQAutoencoder", "evaluate", "train"),
    "seedbatch": ("train_seeds",),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'vqstudy' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


class _Facade(types.ModuleType):
    """Keeps ``vqstudy.train`` the function: importing the submodule of the same name would otherwise
    bind the module over it (the submodule stays reachable as ``sys.modules['vqstudy.train']``)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade
