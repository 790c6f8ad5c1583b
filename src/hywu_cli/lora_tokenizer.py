"""Rank-anchored 2D tokenization of LoRA factors.

A LoRA update of one layer is `delta_W = scaling * lora_B @ lora_A` with `lora_A` of shape (rank, in_features) and
`lora_B` of shape (out_features, rank). Both factors are cut along their long axis into tokens of shape
(rank, token_dim): `lora_A` directly, `lora_B` after transposing to (rank, out_features). A token therefore keeps
all rank rows of one stretch of columns ("rank-anchored"), and the last token of each factor is padded.

The token grid has two axes:
- the layer axis: one row per target layer, in the order of the base network;
- the within-layer axis: that layer's `lora_A` tokens followed by its `lora_B` tokens, padded to the longest row.

Axis names used in shape comments: batch, layers, tokens (within-layer), rank, token_dim, in (in_features),
out (out_features). A `nn.Conv2d` target counts `in_channels * kernel_h * kernel_w` as its in_features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LoraTarget:
    """One layer of the base network that receives a generated LoRA update."""

    name: str
    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(
                f"LoRA target `{self.name}` has in_features={self.in_features}, out_features={self.out_features};"
                " both must be positive"
            )


@dataclass(frozen=True)
class TokenSlot:
    """Source of one grid token: a stretch of columns of one factor of one layer."""

    layer: int
    token: int
    factor: str  # "A" or "B"
    start: int
    length: int


class LoraTokenLayout:
    """The fixed mapping between per-layer LoRA factors and a padded (layers, tokens) grid of rank x token_dim tokens.

    The layout is computed once from the targets, so `tokenize` and `detokenize` only slice and pad.

    Args:
        targets: the layers, in base-network order.
        rank: LoRA rank `r`, the first axis of every token.
        token_dim: columns per token, the second axis of every token.
    """

    def __init__(self, targets: list[LoraTarget], rank: int, token_dim: int) -> None:
        if not targets:
            raise ValueError("`targets` is empty; a LoRA token layout needs at least one target layer")
        if rank < 1 or token_dim < 1:
            raise ValueError(f"`rank` and `token_dim` must be positive, got rank={rank}, token_dim={token_dim}")
        names = [target.name for target in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique, got {names}")

        self.targets = list(targets)
        self.rank = rank
        self.token_dim = token_dim
        self.a_token_counts = [math.ceil(t.in_features / token_dim) for t in targets]
        self.b_token_counts = [math.ceil(t.out_features / token_dim) for t in targets]
        self.num_layers = len(targets)
        self.tokens_per_layer = max(a + b for a, b in zip(self.a_token_counts, self.b_token_counts))
        self.slots = self._build_slots()

    def _build_slots(self) -> list[TokenSlot]:
        slots = []
        for layer, target in enumerate(self.targets):
            token = 0
            for factor, width in (("A", target.in_features), ("B", target.out_features)):
                for start in range(0, width, self.token_dim):
                    slots.append(TokenSlot(layer, token, factor, start, min(self.token_dim, width - start)))
                    token += 1
        return slots

    @property
    def num_valid_tokens(self) -> int:
        return len(self.slots)

    def valid_mask(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Return a bool (layers, tokens) mask, True where a grid cell contains a real token rather than row padding."""
        import torch

        mask = torch.zeros(self.num_layers, self.tokens_per_layer, dtype=torch.bool, device=device)
        for layer in range(self.num_layers):
            mask[layer, : self.a_token_counts[layer] + self.b_token_counts[layer]] = True
        return mask

    def factor_mask(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Return a bool (layers, tokens) mask, True where the cell contains a `lora_B` token."""
        import torch

        mask = torch.zeros(self.num_layers, self.tokens_per_layer, dtype=torch.bool, device=device)
        for layer in range(self.num_layers):
            first_b = self.a_token_counts[layer]
            mask[layer, first_b : first_b + self.b_token_counts[layer]] = True
        return mask

    def tokenize(self, factors: list[tuple[torch.Tensor, torch.Tensor]], padding_value: float = 0.0) -> torch.Tensor:
        """Pack per-layer factors into the token grid.

        Args:
            factors: per target, `(lora_A, lora_B)` of shapes (batch, rank, in) and (batch, out, rank).
            padding_value: fills the cells and columns that belong to no weight. NaN makes a useful poison value
                in tests, because any padding that leaked into a weight would show up as non-finite.

        Returns:
            Tokens of shape (batch, layers, tokens, rank, token_dim).
        """
        import torch

        if len(factors) != self.num_layers:
            raise ValueError(f"expected factors for {self.num_layers} layers, got {len(factors)}")
        lora_A0 = factors[0][0]
        batch = lora_A0.shape[0]
        grid = lora_A0.new_full(
            (batch, self.num_layers, self.tokens_per_layer, self.rank, self.token_dim), padding_value
        )

        for layer, (target, (lora_A, lora_B)) in enumerate(zip(self.targets, factors)):
            expected_a = (batch, self.rank, target.in_features)
            expected_b = (batch, target.out_features, self.rank)
            if tuple(lora_A.shape) != expected_a or tuple(lora_B.shape) != expected_b:
                raise ValueError(
                    f"factors of `{target.name}` have shapes {tuple(lora_A.shape)} and {tuple(lora_B.shape)};"
                    f" expected {expected_a} and {expected_b}"
                )
            row = torch.cat([self._split(lora_A), self._split(lora_B.transpose(1, 2))], dim=1)
            count = row.shape[1]
            grid[:, layer, :count] = row

            # Columns past the end of a factor are padding too.
            a_count = self.a_token_counts[layer]
            self._fill_tail(grid[:, layer, a_count - 1], target.in_features, padding_value)
            self._fill_tail(grid[:, layer, count - 1], target.out_features, padding_value)
        return grid

    def _split(self, factor: torch.Tensor) -> torch.Tensor:
        """Cut (batch, rank, width) into (batch, n_tokens, rank, token_dim), zero-padding the last token."""
        import torch.nn.functional as F

        batch, rank, width = factor.shape
        n_tokens = math.ceil(width / self.token_dim)
        padded = F.pad(factor, (0, n_tokens * self.token_dim - width))
        return padded.view(batch, rank, n_tokens, self.token_dim).transpose(1, 2)

    def _fill_tail(self, token: torch.Tensor, width: int, padding_value: float) -> None:
        used = width - (math.ceil(width / self.token_dim) - 1) * self.token_dim
        token[..., used:] = padding_value

    def detokenize(self, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Unpack a token grid into per-layer factors; the exact inverse of `tokenize` on the cells it wrote.

        Args:
            tokens: (batch, layers, tokens, rank, token_dim).

        Returns:
            Per target, `(lora_A, lora_B)` of shapes (batch, rank, in) and (batch, out, rank). Padding cells and
            columns are never read.
        """
        expected = (self.num_layers, self.tokens_per_layer, self.rank, self.token_dim)
        if tuple(tokens.shape[1:]) != expected:
            raise ValueError(
                f"token grid has shape {tuple(tokens.shape)}; expected (batch, {', '.join(map(str, expected))})"
            )
        batch = tokens.shape[0]

        factors = []
        for layer, target in enumerate(self.targets):
            a_count, b_count = self.a_token_counts[layer], self.b_token_counts[layer]
            a_tokens = tokens[:, layer, :a_count]  # (batch, a_tokens, rank, token_dim)
            b_tokens = tokens[:, layer, a_count : a_count + b_count]
            lora_A = a_tokens.transpose(1, 2).reshape(batch, self.rank, a_count * self.token_dim)
            lora_B = b_tokens.transpose(1, 2).reshape(batch, self.rank, b_count * self.token_dim)
            lora_A = lora_A[..., : target.in_features]  # (batch, rank, in)
            lora_B = lora_B[..., : target.out_features].transpose(1, 2)  # (batch, out, rank)
            factors.append((lora_A, lora_B))
        return factors
