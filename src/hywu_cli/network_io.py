"""Load a diffusers model folder into hywu's plain network classes without importing diffusers."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn


# The file name that diffusers' `ModelMixin.save_pretrained` writes for safetensors weights.
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

NetworkType = TypeVar("NetworkType", bound=nn.Module)


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
    network = network_class(**{key: value for key, value in config.items() if key in accepted})
    network.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    return network.to(dtype)
