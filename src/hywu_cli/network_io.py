"""Load a diffusers model folder into hywu's plain network classes without importing diffusers."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


# The file name that diffusers' `ModelMixin.save_pretrained` writes for safetensors weights.
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

NetworkType = TypeVar("NetworkType", bound=nn.Module)


class _SkipRandomInit(TorchFunctionMode):
    """A torch function mode that turns the random initialisers into no-ops and runs every other function."""

    SKIPPED = frozenset(
        {
            nn.init.uniform_,
            nn.init.normal_,
            nn.init.trunc_normal_,
            nn.init.kaiming_uniform_,
            nn.init.kaiming_normal_,
            nn.init.xavier_uniform_,
            nn.init.xavier_normal_,
            nn.init.orthogonal_,
            torch.Tensor.uniform_,
            torch.Tensor.normal_,
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.SKIPPED:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def skipped_random_init() -> TorchFunctionMode:
    """Return a context in which layers are built with whatever their memory contains, instead of random values.

    For networks whose every parameter is loaded right after they are built: drawing the random values first took
    about half of `load_pipeline` (0.15 of 0.27 s on 2 cores). Constant initialisers (`zeros_`, `ones_`) still run.
    It is a torch function mode, so it acts on the calling thread only and changes nothing in `torch.nn.init`.
    """
    return _SkipRandomInit()


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
