"""Load a diffusers model folder into hywu's plain network classes without importing diffusers."""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn


# The file name that diffusers' `ModelMixin.save_pretrained` writes for safetensors weights.
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

NetworkType = TypeVar("NetworkType", bound=nn.Module)

# The random initialisers of `torch.nn.init` that PyTorch's layers call when they are built.
RANDOM_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "orthogonal_",
)


@contextlib.contextmanager
def skipped_random_init() -> Iterator[None]:
    """Make the random initialisers of `torch.nn.init` leave tensors as they are, within the block.

    For networks whose every parameter is loaded right after they are built: drawing the random values first took
    about half of `load_pipeline` (0.15 of 0.27 s on 2 cores). Constant initialisers (`zeros_`, `ones_`) still run.

    NOTE: the functions are replaced in `torch.nn.init` itself, so a layer built on another thread during the block
    keeps whatever its memory held. hywu builds networks on one thread only.
    """
    saved = {name: getattr(nn.init, name) for name in RANDOM_INITIALISERS}

    def leave(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return tensor

    try:
        for name in RANDOM_INITIALISERS:
            setattr(nn.init, name, leave)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def load_network(
    network_class: type[NetworkType], folder: str | Path, dtype: torch.dtype = torch.float32
) -> NetworkType:
    """Build `network_class` from `folder/config.json` and load `folder/diffusion_pytorch_model.safetensors`.

    Config keys that the class's `__init__` does not take (diffusers' `_class_name`, `_diffusers_version`) are
    ignored; a missing or unexpected weight raises `RuntimeError` from `load_state_dict`.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    accepted = set(inspect.signature(network_class.__init__).parameters) - {"self"}
    # Every parameter and persistent buffer comes from the file (a strict load), so random initial values are waste.
    with skipped_random_init():
        network = network_class(**{key: value for key, value in config.items() if key in accepted})
    network.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    return network.to(dtype)
