"""The parameter generator: a transformer that turns a condition sequence into per-sample LoRA factors.

The HY-WU design (Tencent HY team, "HY-WU (Part I): An Extensible Functional Neural Memory Framework and An
Instantiation in Text-Guided Image Editing", arXiv 2603.07236) reads a hybrid condition (instruction tokens plus
image tokens) and writes a LoRA update for every target layer of a frozen base network, in one forward pass.

The generator works on the token grid of `LoraTokenLayout`, with one hidden vector per
(layer, within-layer token, rank row) position. Each block applies, with pre-norm residuals:
1. self-attention along the layer axis (same token and rank row, all layers);
2. self-attention among one layer's tokens (all tokens and rank rows of that layer);
3. cross-attention from every position to the condition tokens;
4. an MLP.
Two heads project each position to `token_dim` values: one for `lora_A` tokens and one, zero-initialised, for
`lora_B` tokens, so an untrained generator produces `lora_B = 0` and leaves the base network unchanged.

Axis names in shape comments: batch, layers, tokens, rank, width (hidden size), cond (condition tokens).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from hywu_cli.lora_tokenizer import LoraTarget, LoraTokenLayout


logger = logging.getLogger(__name__)


@dataclass
class GeneratedLora:
    """Per-sample LoRA factors for named layers, plus the scale applied to `lora_B @ lora_A`.

    `lora_A[name]` has shape (batch, rank, in) and `lora_B[name]` (batch, out, rank).
    """

    lora_A: dict[str, torch.Tensor]
    lora_B: dict[str, torch.Tensor]
    scaling: float

    @property
    def batch_size(self) -> int:
        return next(iter(self.lora_A.values())).shape[0]

    def scaled(self, strength: float | torch.Tensor) -> GeneratedLora:
        """Return the same factors with `scaling` multiplied by `strength` (a float, or a (batch,) tensor)."""
        if isinstance(strength, torch.Tensor):
            # A per-sample strength is folded into lora_B, because `scaling` is one number for the batch.
            factor = strength.reshape(-1, 1, 1).to(next(iter(self.lora_B.values())))
            return GeneratedLora(self.lora_A, {k: v * factor for k, v in self.lora_B.items()}, self.scaling)
        return GeneratedLora(self.lora_A, self.lora_B, self.scaling * float(strength))

    def select(self, index: int) -> GeneratedLora:
        """Return the factors of one batch element, keeping a batch axis of size 1."""
        return GeneratedLora(
            {k: v[index : index + 1] for k, v in self.lora_A.items()},
            {k: v[index : index + 1] for k, v in self.lora_B.items()},
            self.scaling,
        )


class FactorizedAttention(nn.Module):
    """Multi-head attention over one axis of the grid, or cross-attention to a separate key/value sequence."""

    def __init__(self, width: int, num_heads: int, kv_width: int | None = None) -> None:
        super().__init__()
        if width % num_heads != 0:
            raise ValueError(f"`width`={width} is not divisible by `num_heads`={num_heads}")
        self.num_heads = num_heads
        self.to_q = nn.Linear(width, width)
        self.to_kv = nn.Linear(kv_width or width, 2 * width)
        self.to_out = nn.Linear(width, width)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        # x: (sequences, length, width); context: (sequences, context_length, kv_width)
        # key_mask: bool, broadcastable to (sequences, 1, 1, context_length), True where a key may be attended.
        context = x if context is None else context
        sequences, length, width = x.shape
        head_dim = width // self.num_heads

        q = self.to_q(x).view(sequences, length, self.num_heads, head_dim).transpose(1, 2)
        k, v = self.to_kv(context).view(sequences, -1, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # (sequences, heads, length, head_dim)
        return self.to_out(out.transpose(1, 2).reshape(sequences, length, width))


class GeneratorBlock(nn.Module):
    """Layer-axis attention, within-layer attention, cross-attention to the condition, and an MLP."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_layers = nn.LayerNorm(width)
        self.attn_layers = FactorizedAttention(width, num_heads)
        self.norm_tokens = nn.LayerNorm(width)
        self.attn_tokens = FactorizedAttention(width, num_heads)
        self.norm_cross = nn.LayerNorm(width)
        self.attn_cross = FactorizedAttention(width, num_heads)
        self.norm_mlp = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        layer_mask: torch.Tensor,
        token_mask: torch.Tensor,
        cond_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        # x: (batch, layers, positions, width), where positions = tokens * rank
        batch, layers, positions, width = x.shape

        # 1. Attention along the layer axis: one sequence per (batch, position).
        h = self.norm_layers(x).transpose(1, 2).reshape(batch * positions, layers, width)
        h = self.attn_layers(h, key_mask=layer_mask)
        x = x + h.view(batch, positions, layers, width).transpose(1, 2)

        # 2. Attention among one layer's tokens: one sequence per (batch, layer).
        h = self.norm_tokens(x).reshape(batch * layers, positions, width)
        h = self.attn_tokens(h, key_mask=token_mask)
        x = x + h.view(batch, layers, positions, width)

        # 3. Cross-attention from every position to the condition tokens.
        h = self.norm_cross(x).reshape(batch, layers * positions, width)
        h = self.attn_cross(h, context=cond, key_mask=cond_mask)
        x = x + h.view(batch, layers, positions, width)

        # 4. MLP.
        return x + self.mlp(self.norm_mlp(x))


class ParameterGenerator(ModelMixin, ConfigMixin):
    """Generates per-sample LoRA factors for every target layer from a condition sequence.

    Args:
        targets: `[name, in_features, out_features]` per target layer, in base-network order (JSON-friendly so it
            round-trips through `config.json`).
        rank: LoRA rank of the generated updates.
        token_dim: columns per parameter token.
        cond_dim: width of the incoming condition tokens.
        width: hidden size of the transformer.
        depth: number of generator blocks.
        num_heads: attention heads per attention layer.
        mlp_ratio: MLP hidden size as a multiple of `width`.
        lora_alpha: the update is scaled by `lora_alpha / rank`, as in PEFT.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        targets: list[list],
        rank: int = 4,
        token_dim: int = 64,
        cond_dim: int = 128,
        width: int = 128,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        lora_alpha: float = 4.0,
    ) -> None:
        super().__init__()
        self.layout = LoraTokenLayout([LoraTarget(str(n), int(i), int(o)) for n, i, o in targets], rank, token_dim)
        layers, tokens = self.layout.num_layers, self.layout.tokens_per_layer

        # The learned token grid: one embedding per layer, per within-layer token, per rank row and per factor.
        self.layer_embed = nn.Parameter(torch.randn(layers, 1, 1, width) * 0.02)
        self.token_embed = nn.Parameter(torch.randn(1, tokens, 1, width) * 0.02)
        self.rank_embed = nn.Parameter(torch.randn(1, 1, rank, width) * 0.02)
        self.factor_embed = nn.Parameter(torch.randn(2, width) * 0.02)

        self.cond_proj = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList([GeneratorBlock(width, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(width)
        self.head_a = nn.Linear(width, token_dim)
        self.head_b = nn.Linear(width, token_dim)
        nn.init.zeros_(self.head_b.weight)
        nn.init.zeros_(self.head_b.bias)

        # Unit-variance head outputs are scaled per layer by 1/sqrt(in_features), so that `lora_A @ x` keeps the
        # scale of x whatever the layer's width (the usual Kaiming-style range for a LoRA down-projection).
        a_scale = torch.tensor([1.0 / math.sqrt(t.in_features) for t in self.layout.targets])
        self.register_buffer("a_scale", a_scale.view(layers, 1, 1, 1), persistent=False)
        self.register_buffer("valid_mask", self.layout.valid_mask(), persistent=False)
        self.register_buffer("b_mask", self.layout.factor_mask(), persistent=False)

    @property
    def scaling(self) -> float:
        return self.config.lora_alpha / self.config.rank

    def _initial_grid(self, batch: int) -> torch.Tensor:
        factor = self.factor_embed[self.b_mask.long()]  # (layers, tokens, width)
        grid = self.layer_embed + self.token_embed + self.rank_embed + factor[:, :, None, :]
        return grid.expand(batch, -1, -1, -1, -1)  # (batch, layers, tokens, rank, width)

    def _attention_masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        rank = self.config.rank
        # Layer axis: the sequence for position (token, rank row) may only attend to layers that have that token.
        # Shape (positions, 1, 1, layers); repeated over the batch when used.
        valid_positions = self.valid_mask[:, :, None].expand(-1, -1, rank).reshape(self.layout.num_layers, -1)
        layer_mask = valid_positions.transpose(0, 1)[:, None, None, :]
        # Within a layer: keys limited to that layer's real tokens. Shape (layers, 1, 1, positions).
        token_mask = valid_positions[:, None, None, :]
        return layer_mask, token_mask

    def forward_tokens(self, cond: torch.Tensor, cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Generate the token grid.

        Args:
            cond: condition tokens (batch, cond, cond_dim).
            cond_mask: optional bool (batch, cond), True for real condition tokens.

        Returns:
            Tokens (batch, layers, tokens, rank, token_dim), to be unpacked by `self.layout.detokenize`.
        """
        batch = cond.shape[0]
        layers, tokens, rank = self.layout.num_layers, self.layout.tokens_per_layer, self.config.rank
        width = self.config.width

        context = self.cond_proj(cond)  # (batch, cond, width)
        attn_cond_mask = None if cond_mask is None else cond_mask[:, None, None, :]
        layer_mask, token_mask = self._attention_masks()
        layer_mask = layer_mask.repeat(batch, 1, 1, 1)  # (batch * positions, 1, 1, layers)
        token_mask = token_mask.repeat(batch, 1, 1, 1)  # (batch * layers, 1, 1, positions)

        x = self._initial_grid(batch).reshape(batch, layers, tokens * rank, width)
        for block in self.blocks:
            x = block(x, context, layer_mask, token_mask, attn_cond_mask)
        x = self.norm_out(x).view(batch, layers, tokens, rank, width)

        a_values = self.head_a(x) * self.a_scale  # (batch, layers, tokens, rank, token_dim)
        b_values = self.head_b(x)
        return torch.where(self.b_mask[None, :, :, None, None], b_values, a_values)

    def forward(self, cond: torch.Tensor, cond_mask: torch.Tensor | None = None) -> GeneratedLora:
        """Generate per-sample LoRA factors for every target layer from condition tokens (batch, cond, cond_dim)."""
        factors = self.layout.detokenize(self.forward_tokens(cond, cond_mask))
        names = [target.name for target in self.layout.targets]
        return GeneratedLora(
            lora_A={name: a for name, (a, _) in zip(names, factors)},
            lora_B={name: b for name, (_, b) in zip(names, factors)},
            scaling=self.scaling,
        )

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
