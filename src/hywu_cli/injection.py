"""Functional injection of generated, per-sample LoRA updates into a frozen base network.

`inject_generated_lora` wraps the chosen `nn.Linear` / `nn.Conv2d` modules of any `nn.Module` in a
`GeneratedLoraLayer`, which keeps the original module as `base_layer` and adds `scaling * B(A(x))` with factors
that differ for every element of the batch. The factors are active only inside `apply_generated_lora(...)`,
which clears them in `finally`, so a failed forward pass never leaves an update behind. Base weights are never
written: `merge_generated_lora` builds a separate static copy instead.

Factor shapes: `lora_A` (batch, rank, in) and `lora_B` (batch, out, rank); for a Conv2d, in = in_channels * kh * kw
and `lora_A` acts as a (rank, in_channels, kh, kw) convolution with the base layer's stride, padding and dilation,
followed by a 1x1 convolution `lora_B` (the same split that PEFT uses for Conv2d LoRA).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hywu_cli.errors import NonFiniteLoraError
from hywu_cli.generator import GeneratedLora
from hywu_cli.lora_tokenizer import LoraTarget


logger = logging.getLogger(__name__)


class GeneratedLoraLayer(nn.Module):
    """Wraps a `nn.Linear` or `nn.Conv2d` and adds a per-sample LoRA update while one is set."""

    def __init__(self, base_layer: nn.Module, name: str) -> None:
        super().__init__()
        if isinstance(base_layer, nn.Conv2d) and base_layer.groups != 1:
            raise ValueError(f"`{name}` is a grouped Conv2d (groups={base_layer.groups}); only groups=1 is supported")
        if not isinstance(base_layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"`{name}` is a {type(base_layer).__name__}; only nn.Linear and nn.Conv2d can be wrapped")
        self.base_layer = base_layer
        self.name = name
        self.lora_A: torch.Tensor | None = None
        self.lora_B: torch.Tensor | None = None
        self.scaling = 1.0
        self.disabled = False

    @property
    def in_features(self) -> int:
        layer = self.base_layer
        if isinstance(layer, nn.Linear):
            return layer.in_features
        return layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]

    @property
    def out_features(self) -> int:
        layer = self.base_layer
        return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels

    def set_lora(self, lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float) -> None:
        """Set this layer's factors, (batch, rank, in) and (batch, out, rank), after checking shapes and values."""
        if (
            lora_A.ndim != 3
            or lora_B.ndim != 3
            or lora_A.shape[0] != lora_B.shape[0]
            or lora_A.shape[1] != lora_B.shape[2]
        ):
            raise ValueError(
                f"LoRA factors for `{self.name}` have shapes {tuple(lora_A.shape)} and {tuple(lora_B.shape)};"
                " expected (batch, rank, in) and (batch, out, rank)"
            )
        if lora_A.shape[2] != self.in_features or lora_B.shape[1] != self.out_features:
            raise ValueError(
                f"LoRA factors for `{self.name}` have in={lora_A.shape[2]}, out={lora_B.shape[1]};"
                f" the layer has in={self.in_features}, out={self.out_features}"
            )
        for factor_name, factor in (("lora_A", lora_A), ("lora_B", lora_B)):
            if not torch.isfinite(factor).all():
                raise NonFiniteLoraError(
                    f"generated {factor_name} for layer `{self.name}` contains NaN or infinite values;"
                    " the generator weights may be corrupt (run `hywu download-weights`)"
                )
        self.lora_A, self.lora_B, self.scaling = lora_A, lora_B, scaling

    def clear_lora(self) -> None:
        self.lora_A = self.lora_B = None

    def get_delta_weight(self, index: int = 0) -> torch.Tensor:
        """Return `scaling * B @ A` of batch element `index`, shaped like the base layer's weight."""
        if self.lora_A is None or self.lora_B is None:
            raise RuntimeError(f"no LoRA factors are set on `{self.name}`")
        lora_A = self.lora_A[index].float()
        lora_B = self.lora_B[index].float()
        delta = self.scaling * (lora_B @ lora_A)  # (out, in)
        return delta.view_as(self.base_layer.weight).to(self.base_layer.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.disabled or self.lora_A is None or self.lora_B is None:
            return result
        lora_A = self.lora_A.to(x.dtype)
        lora_B = self.lora_B.to(x.dtype)
        batch = x.shape[0]
        if lora_A.shape[0] != batch:
            if lora_A.shape[0] != 1:
                raise ValueError(
                    f"`{self.name}` received an input batch of {batch} but LoRA factors for {lora_A.shape[0]} samples"
                )
            lora_A, lora_B = lora_A.expand(batch, -1, -1), lora_B.expand(batch, -1, -1)

        if isinstance(self.base_layer, nn.Linear):
            delta = self._linear_delta(x, lora_A, lora_B)
        else:
            delta = self._conv_delta(x, lora_A, lora_B)
        return result + self.scaling * delta

    @staticmethod
    def _linear_delta(x: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (batch, rows, in)
        hidden = torch.bmm(flat, lora_A.transpose(1, 2))  # (batch, rows, rank)
        delta = torch.bmm(hidden, lora_B.transpose(1, 2))  # (batch, rows, out)
        return delta.view(*x.shape[:-1], lora_B.shape[1])

    def _conv_delta(self, x: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor) -> torch.Tensor:
        # One grouped convolution runs every sample with its own kernels: the batch is folded into channels.
        conv = self.base_layer
        batch, channels, height, width = x.shape
        rank = lora_A.shape[1]
        kernel_a = lora_A.reshape(batch * rank, channels, *conv.kernel_size)
        hidden = F.conv2d(
            x.reshape(1, batch * channels, height, width),
            kernel_a,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=batch,
        )  # (1, batch * rank, out_height, out_width)
        kernel_b = lora_B.reshape(batch * conv.out_channels, rank, 1, 1)
        delta = F.conv2d(hidden, kernel_b, groups=batch)  # (1, batch * out, out_height, out_width)
        return delta.view(batch, conv.out_channels, *delta.shape[2:])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, generated_lora={'set' if self.lora_A is not None else 'none'}"

    def __repr__(self) -> str:
        return f"generated_lora.{super().__repr__()}"


def _matches(name: str, patterns: list[str]) -> bool:
    return any(re.fullmatch(pattern, name) for pattern in patterns)


def inject_generated_lora(model: nn.Module, target_patterns: list[str]) -> list[LoraTarget]:
    """Wrap every `nn.Linear` / `nn.Conv2d` whose qualified name fully matches one of `target_patterns` (regexes).

    Returns the targets in module order, which is the layer axis of the generator. Raises `ValueError` listing the
    candidate layer names when no module matches.
    """
    candidates = [name for name, module in model.named_modules() if isinstance(module, (nn.Linear, nn.Conv2d))]
    chosen = [name for name in candidates if _matches(name, target_patterns)]
    if not chosen:
        raise ValueError(f"no nn.Linear/nn.Conv2d module matches {target_patterns}; candidates are {candidates}")

    targets = []
    for name in chosen:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        wrapped = GeneratedLoraLayer(getattr(parent, child_name), name)
        setattr(parent, child_name, wrapped)
        targets.append(LoraTarget(name, wrapped.in_features, wrapped.out_features))
    return targets


def generated_lora_layers(model: nn.Module) -> dict[str, GeneratedLoraLayer]:
    """Return the wrapped layers of `model`, keyed by their original module names."""
    return {module.name: module for module in model.modules() if isinstance(module, GeneratedLoraLayer)}


@contextlib.contextmanager
def apply_generated_lora(model: nn.Module, lora: GeneratedLora | None) -> Iterator[nn.Module]:
    """Activate `lora` on the wrapped layers of `model` for the duration of the block.

    The factors are cleared in `finally`, so an exception inside the block leaves no update active. `None` runs
    the bare base network. Every wrapped layer must receive factors, and extra names are an error too, because a
    name mismatch means the generator and the base network were built for different layer lists.
    """
    layers = generated_lora_layers(model)
    if lora is not None and set(lora.lora_A) != set(layers):
        missing = sorted(set(layers) - set(lora.lora_A))
        unknown = sorted(set(lora.lora_A) - set(layers))
        raise ValueError(f"generated LoRA does not match the wrapped layers: missing {missing}, unknown {unknown}")
    try:
        if lora is not None:
            for name, layer in layers.items():
                layer.set_lora(lora.lora_A[name], lora.lora_B[name], lora.scaling)
        yield model
    finally:
        for layer in layers.values():
            layer.clear_lora()


@contextlib.contextmanager
def disable_generated_lora(model: nn.Module) -> Iterator[nn.Module]:
    """Run the base network without its update inside the block, even while factors are set."""
    layers = generated_lora_layers(model).values()
    previous = [layer.disabled for layer in layers]
    try:
        for layer in layers:
            layer.disabled = True
        yield model
    finally:
        for layer, state in zip(layers, previous):
            layer.disabled = state


def merge_generated_lora(model: nn.Module, lora: GeneratedLora, index: int = 0) -> nn.Module:
    """Return a static copy of `model` with batch element `index` of `lora` merged into the weights.

    The copy contains plain `nn.Linear` / `nn.Conv2d` modules again, and `model` itself is left untouched. The merge is
    computed in float32 and checked for finite values before it is written.
    """
    merged = copy.deepcopy(model)
    for name, layer in list(generated_lora_layers(merged).items()):
        base = layer.base_layer
        layer.set_lora(lora.lora_A[name][index : index + 1], lora.lora_B[name][index : index + 1], lora.scaling)
        delta = layer.get_delta_weight(0)
        layer.clear_lora()
        with torch.no_grad():
            new_weight = base.weight.float() + delta.float()
            if not torch.isfinite(new_weight).all():
                raise NonFiniteLoraError(f"merging the LoRA update into `{name}` produced NaN or infinite weights")
            base.weight.copy_(new_weight.to(base.weight.dtype))
        parent_name, _, child_name = name.rpartition(".")
        parent = merged.get_submodule(parent_name) if parent_name else merged
        setattr(parent, child_name, base)
    return merged


def unwrap_generated_lora(model: nn.Module) -> nn.Module:
    """Replace every `GeneratedLoraLayer` in `model` by its `base_layer`, in place, and return `model`."""
    for name, layer in list(generated_lora_layers(model).items()):
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child_name, layer.base_layer)
    return model


def save_peft_adapter(model: nn.Module, lora: GeneratedLora, directory: str | Path, index: int = 0) -> Path:
    """Write batch element `index` of `lora` as a PEFT LoRA adapter folder for the unwrapped base network.

    The folder contains `adapter_config.json` and `adapter_model.safetensors`, loadable with
    `peft.PeftModel.from_pretrained(base_model, directory)`, where `base_model` is the same network without
    `GeneratedLoraLayer` wrappers. PEFT scales by `lora_alpha / r`, so `lora_alpha` is set to `scaling * r`.
    """
    from safetensors.torch import save_file

    layers = generated_lora_layers(model)
    for name, layer in layers.items():
        # PEFT (checked with 0.21) builds its Conv2d lora_A without the base layer's dilation, so a dilated
        # target would load but compute a different function.
        if isinstance(layer.base_layer, nn.Conv2d) and layer.base_layer.dilation != (1, 1):
            raise ValueError(
                f"`{name}` is a dilated Conv2d (dilation={layer.base_layer.dilation}); PEFT cannot express its LoRA"
            )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rank = next(iter(lora.lora_A.values())).shape[1]

    state_dict = {}
    for name, layer in layers.items():
        lora_A = lora.lora_A[name][index].detach().float().cpu()  # (rank, in)
        lora_B = lora.lora_B[name][index].detach().float().cpu()  # (out, rank)
        if isinstance(layer.base_layer, nn.Conv2d):
            lora_A = lora_A.reshape(rank, layer.base_layer.in_channels, *layer.base_layer.kernel_size)
            lora_B = lora_B.reshape(layer.out_features, rank, 1, 1)
        state_dict[f"base_model.model.{name}.lora_A.weight"] = lora_A.contiguous()
        state_dict[f"base_model.model.{name}.lora_B.weight"] = lora_B.contiguous()

    config = {
        "peft_type": "LORA",
        "task_type": None,
        "r": rank,
        "lora_alpha": lora.scaling * rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        # A regex string is matched with re.fullmatch by PEFT, so a name never matches a longer path by suffix.
        "target_modules": "|".join(re.escape(name) for name in sorted(layers)),
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "inference_mode": True,
        "base_model_name_or_path": None,
        "revision": None,
        "modules_to_save": None,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(state_dict, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    return directory
