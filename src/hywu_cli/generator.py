"""The parameter generator: a transformer that turns a condition sequence into per-sample LoRA factors.

The HY-WU design (Tencent HY team, "HY-WU (Part I): An Extensible Functional Neural Memory Framework and An
Instantiation in Text-Guided Image Editing", arXiv 2603.07236) reads a hybrid condition (instruction tokens plus
image tokens) and writes a LoRA update for every target layer of a frozen base network, in one forward pass.

The generator works on the token grid of `LoraTokenLayout`, with one hidden vector per real
(layer, within-layer token, rank row) position; padding cells of the grid are skipped except inside attention. Each block applies, with pre-norm residuals:
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
from types import SimpleNamespace

import torch
import torch.nn.functional as F
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

    def scaled(self, strength: float) -> GeneratedLora:
        """Return the same factors with `scaling` multiplied by `strength`."""
        return GeneratedLora(self.lora_A, self.lora_B, self.scaling * float(strength))

    def repeated(self, batch_size: int) -> GeneratedLora:
        """Return a batch-1 update repeated for `batch_size` samples (views, no copies)."""
        if self.batch_size != 1:
            raise ValueError(f"only a batch-1 update can be repeated, not one of batch size {self.batch_size}")
        return GeneratedLora(
            {name: factor.expand(batch_size, -1, -1) for name, factor in self.lora_A.items()},
            {name: factor.expand(batch_size, -1, -1) for name, factor in self.lora_B.items()},
            self.scaling,
        )


class GridAttention(nn.Module):
    """Multi-head attention whose queries, keys and values are projected on packed (real) positions only.

    The parameter grid is mostly padding: a layer with few tokens shares the within-layer axis with the longest
    layer. Projections and the MLP therefore run on the packed sequence of real positions, and only the attention
    itself scatters q, k and v into a padded (sequences, length) layout chosen by `scatter_index`.
    """

    def __init__(self, width: int, num_heads: int, kv_width: int | None = None) -> None:
        super().__init__()
        if width % num_heads != 0:
            raise ValueError(f"`width`={width} is not divisible by `num_heads`={num_heads}")
        self.num_heads = num_heads
        self.to_q = nn.Linear(width, width)
        self.to_kv = nn.Linear(kv_width or width, 2 * width)
        self.to_out = nn.Linear(width, width)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        sequences, length, width = x.shape
        return x.view(sequences, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def self_attention(
        self, x: torch.Tensor, scatter_index: torch.Tensor, shape: tuple[int, int], key_mask: torch.Tensor
    ) -> torch.Tensor:
        """Attend within the sequences of a padded layout.

        Args:
            x: packed positions (batch, real_positions, width).
            scatter_index: (real_positions,) flat index of each real position in a (sequences * length) layout.
            shape: (sequences, length) of the padded layout per batch element.
            key_mask: bool (sequences, 1, 1, length), True where a key is a real position.
        """
        batch, positions, width = x.shape
        sequences, length = shape
        q, kv = self.to_q(x), self.to_kv(x)
        padded_qkv = x.new_zeros(batch, sequences * length, 3 * width)
        padded_qkv[:, scatter_index] = torch.cat([q, kv], dim=-1)
        q, k, v = padded_qkv.view(batch * sequences, length, 3 * width).chunk(3, dim=-1)
        mask = key_mask.repeat(batch, 1, 1, 1)
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v), attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, sequences * length, width)[:, scatter_index]
        return self.to_out(out)  # (batch, real_positions, width)

    def cross_attention(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """Attend from packed positions (batch, real_positions, width) to context (batch, cond, kv_width)."""
        q = self._heads(self.to_q(x))
        k, v = self.to_kv(context).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(q, self._heads(k), self._heads(v), attn_mask=key_mask)
        return self.to_out(out.transpose(1, 2).reshape(x.shape))


@dataclass
class GridIndex:
    """Index maps between packed real positions and the two padded layouts of the parameter grid."""

    layer_axis: torch.Tensor  # flat index into (positions_per_layer, layers)
    within_layer: torch.Tensor  # flat index into (layers, positions_per_layer)
    layer_axis_mask: torch.Tensor  # (positions_per_layer, 1, 1, layers)
    within_layer_mask: torch.Tensor  # (layers, 1, 1, positions_per_layer)
    layers: int
    positions_per_layer: int


class GeneratorBlock(nn.Module):
    """Layer-axis attention, within-layer attention, cross-attention to the condition, and an MLP."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_layers = nn.LayerNorm(width)
        self.attn_layers = GridAttention(width, num_heads)
        self.norm_tokens = nn.LayerNorm(width)
        self.attn_tokens = GridAttention(width, num_heads)
        self.norm_cross = nn.LayerNorm(width)
        self.attn_cross = GridAttention(width, num_heads)
        self.norm_mlp = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor, index: GridIndex, cond_mask: torch.Tensor | None
    ) -> torch.Tensor:
        # x: packed real positions (batch, real_positions, width)
        layers, per_layer = index.layers, index.positions_per_layer

        # 1. Attention along the layer axis: one sequence per (token, rank row) position.
        x = x + self.attn_layers.self_attention(
            self.norm_layers(x), index.layer_axis, (per_layer, layers), index.layer_axis_mask
        )

        # 2. Attention among one layer's tokens: one sequence per layer.
        x = x + self.attn_tokens.self_attention(
            self.norm_tokens(x), index.within_layer, (layers, per_layer), index.within_layer_mask
        )

        # 3. Cross-attention from every position to the condition tokens.
        x = x + self.attn_cross.cross_attention(self.norm_cross(x), cond, cond_mask)

        # 4. MLP.
        return x + self.mlp(self.norm_mlp(x))


class ParameterGeneratorNetwork(nn.Module):
    """Generates per-sample LoRA factors for every target layer from a condition sequence.

    A plain `nn.Module`; `hywu_cli.modeling.ParameterGenerator` adds diffusers' `ModelMixin` save/load.

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
        layer_gains: `{layer name: gain}` multiplying the generated `lora_B` of those layers (default 1). A layer
            with few outputs gets a small share of the shared heads' gradient; a gain speeds up its learning.
        position_bias: learn one zero-initialised bias per grid position, added to the heads' output there. All
            positions share the heads. Without the bias, the part of the update that every instance needs must be
            written through the position embeddings. With it, that part is learned as directly as a static LoRA,
            and the transformer generates the rest for each instance.
    """

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
        layer_gains: dict[str, float] | None = None,
        position_bias: bool = False,
    ) -> None:
        super().__init__()
        self.hparams = SimpleNamespace(
            targets=targets,
            rank=rank,
            token_dim=token_dim,
            cond_dim=cond_dim,
            width=width,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            lora_alpha=lora_alpha,
            layer_gains=dict(layer_gains or {}),
            position_bias=position_bias,
        )
        self.layout = LoraTokenLayout([LoraTarget(str(n), int(i), int(o)) for n, i, o in targets], rank, token_dim)
        layers, tokens = self.layout.num_layers, self.layout.tokens_per_layer

        # The learned token grid: one embedding per layer, per within-layer token, per rank row and per factor.
        self.layer_embed = nn.Parameter(torch.randn(layers, 1, 1, width) * 0.02)
        self.token_embed = nn.Parameter(torch.randn(1, tokens, 1, width) * 0.02)
        self.rank_embed = nn.Parameter(torch.randn(1, 1, rank, width) * 0.02)
        self.factor_embed = nn.Parameter(torch.randn(2, width) * 0.02)

        self.cond_proj = nn.Linear(cond_dim, width)
        # The first condition token summarises the instance (see `ConditionEncoderNetwork`). Adding it to every grid
        # position gives each position the instance's identity before any attention has been learned.
        self.summary_proj = nn.Linear(width, width)
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
        unknown = sorted(set(self.hparams.layer_gains) - {t.name for t in self.layout.targets})
        if unknown:
            raise ValueError(f"`layer_gains` names layers that are not targets: {', '.join(unknown)}")
        b_gain = torch.tensor([float(self.hparams.layer_gains.get(t.name, 1.0)) for t in self.layout.targets])
        self.register_buffer("b_gain", b_gain, persistent=False)
        self.register_buffer("valid_mask", self.layout.valid_mask(), persistent=False)
        self.register_buffer("b_mask", self.layout.factor_mask(), persistent=False)
        # One row per real grid position, (real_positions, token_dim); None without a position bias.
        self.register_parameter("bias_tokens", None)
        if position_bias:
            self.bias_tokens = nn.Parameter(torch.zeros(int(self.valid_mask.sum()) * rank, token_dim))

    @property
    def scaling(self) -> float:
        return self.hparams.lora_alpha / self.hparams.rank

    def _initial_grid(self) -> torch.Tensor:
        factor = self.factor_embed[self.b_mask.long()]  # (layers, tokens, width)
        return (
            self.layer_embed + self.token_embed + self.rank_embed + factor[:, :, None, :]
        )  # (layers, tokens, rank, width)

    def _grid_index(self) -> GridIndex:
        # The index depends only on the layout, so it is built once per device and reused by every forward pass.
        cached = getattr(self, "_cached_index", None)
        if cached is not None and cached.layer_axis.device == self.valid_mask.device:
            return cached
        self._cached_index = self._build_grid_index()
        return self._cached_index

    def _build_grid_index(self) -> GridIndex:
        layers, tokens, rank = self.layout.num_layers, self.layout.tokens_per_layer, self.hparams.rank
        per_layer = tokens * rank
        valid = self.valid_mask[:, :, None].expand(-1, -1, rank).reshape(layers, per_layer)  # (layers, positions)
        layer_index, position_index = valid.nonzero(as_tuple=True)  # row-major: packed order is (layer, token, rank)
        return GridIndex(
            layer_axis=position_index * layers + layer_index,
            within_layer=layer_index * per_layer + position_index,
            layer_axis_mask=valid.transpose(0, 1)[:, None, None, :],
            within_layer_mask=valid[:, None, None, :],
            layers=layers,
            positions_per_layer=per_layer,
        )

    def forward_tokens(self, cond: torch.Tensor, cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Generate the token grid.

        Args:
            cond: condition tokens (batch, cond, cond_dim).
            cond_mask: optional bool (batch, cond), True for real condition tokens.

        Returns:
            Tokens (batch, layers, tokens, rank, token_dim), to be unpacked by `self.layout.detokenize`. Cells that
            belong to no weight are zero.
        """
        batch = cond.shape[0]
        layers, tokens, rank = self.layout.num_layers, self.layout.tokens_per_layer, self.hparams.rank
        index = self._grid_index()

        context = self.cond_proj(cond)  # (batch, cond, width)
        attn_cond_mask = None if cond_mask is None else cond_mask[:, None, None, :]

        grid = self._initial_grid().reshape(layers * tokens * rank, -1)
        x = grid[index.within_layer] + self.summary_proj(context[:, :1])  # (batch, real_positions, width)
        for block in self.blocks:
            x = block(x, context, index, attn_cond_mask)
        x = self.norm_out(x)

        is_b = self.b_mask[:, :, None].expand(-1, -1, rank).reshape(-1)[index.within_layer]  # (real_positions,)
        a_scale = self.a_scale.view(layers, 1).expand(-1, tokens * rank).reshape(-1)[index.within_layer]
        b_gain = self.b_gain.view(layers, 1).expand(-1, tokens * rank).reshape(-1)[index.within_layer]
        values_a, values_b = self.head_a(x), self.head_b(x)  # (batch, real_positions, token_dim)
        if self.bias_tokens is not None:
            values_a, values_b = values_a + self.bias_tokens, values_b + self.bias_tokens
        values = torch.where(is_b[None, :, None], values_b * b_gain[None, :, None], values_a * a_scale[None, :, None])

        out = values.new_zeros(batch, layers * tokens * rank, self.hparams.token_dim)
        out[:, index.within_layer] = values
        return out.view(batch, layers, tokens, rank, self.hparams.token_dim)

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
