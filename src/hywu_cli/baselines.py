"""Static baselines that HY-WU is measured against: one shared LoRA update for every instruction and photo.

The generator writes a different LoRA update per instance. The static LoRA baseline learns one set of factors,
with the same targets, rank and scale, and applies it to every sample. The static SFT baseline is a fully
fine-tuned copy of the base editor, so it needs no module of its own. Both are trained by `python -m hywu_cli.training` with the
generator's data and step budget.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from hywu_cli.generator import GeneratedLora
from hywu_cli.lora_tokenizer import LoraTarget


class StaticLora(nn.Module):
    """One learned pair of LoRA factors per target layer, shared by every sample.

    `lora_A` starts like PEFT's default (Kaiming uniform), `lora_B` at zero, so the untrained update is a no-op.

    Args:
        targets: the wrapped layers, as `inject_generated_lora` lists them.
        rank: LoRA rank.
        lora_alpha: the update is scaled by `lora_alpha / rank`, as in PEFT and the generator.
        layer_gains: `{layer name: gain}` multiplying `lora_B` of those layers, as the generator does.
    """

    def __init__(
        self, targets: list[LoraTarget], rank: int, lora_alpha: float, layer_gains: dict[str, float] | None = None
    ) -> None:
        super().__init__()
        self.names = [target.name for target in targets]
        self.scaling = lora_alpha / rank
        self.gains = [float((layer_gains or {}).get(name, 1.0)) for name in self.names]
        self.lora_A = nn.ParameterList()
        self.lora_B = nn.ParameterList()
        for target in targets:
            factor_a = torch.empty(rank, target.in_features)
            nn.init.kaiming_uniform_(factor_a, a=math.sqrt(5))
            self.lora_A.append(nn.Parameter(factor_a))
            self.lora_B.append(nn.Parameter(torch.zeros(target.out_features, rank)))

    def forward(self, batch_size: int) -> GeneratedLora:
        """Return the shared factors repeated over a batch: A (batch, rank, in), B (batch, out, rank)."""
        return GeneratedLora(
            {name: a.expand(batch_size, -1, -1) for name, a in zip(self.names, self.lora_A)},
            {name: (b * gain).expand(batch_size, -1, -1) for name, b, gain in zip(self.names, self.lora_B, self.gains)},
            self.scaling,
        )

    def save(self, path: Path) -> None:
        """Write the factors (gains applied) and scale to one safetensors file."""
        from safetensors.torch import save_file

        lora = self(1)
        tensors = {f"{name}.lora_A": lora.lora_A[name][0].detach().contiguous() for name in self.names}
        tensors |= {f"{name}.lora_B": lora.lora_B[name][0].detach().contiguous() for name in self.names}
        save_file(tensors, str(path), metadata={"scaling": str(self.scaling)})


    def load(self, path: Path) -> None:
        """Continue from a file written by `save`: its `lora_B` is divided by the gains that `save` applied."""
        saved = load_static_lora(path)
        with torch.no_grad():
            for name, a, b, gain in zip(self.names, self.lora_A, self.lora_B, self.gains):
                a.copy_(saved.lora_A[name][0])
                b.copy_(saved.lora_B[name][0] / gain)


def load_static_lora(path: Path) -> GeneratedLora:
    """Read a file written by `StaticLora.save` as a batch-1 `GeneratedLora`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        scaling = float(handle.metadata()["scaling"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    names = sorted({key.rsplit(".", 1)[0] for key in tensors})
    return GeneratedLora(
        {name: tensors[f"{name}.lora_A"][None] for name in names},
        {name: tensors[f"{name}.lora_B"][None] for name in names},
        scaling,
    )
