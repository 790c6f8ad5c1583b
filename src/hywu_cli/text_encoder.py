"""The frozen instruction encoder: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT) in plain torch.

The model folder is a standard transformers BERT folder (config.json, model.safetensors, tokenizer.json). hywu
runs the BERT forward pass itself with the `tokenizers` library instead of importing `transformers`, which cuts
about a second from every `hywu edit` start on a 2-core CPU. `tests/test_text_encoder.py` checks the result
against `transformers.BertModel`.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hywu_cli.errors import HywuWarning
from hywu_cli.network_io import skipped_random_init


logger = logging.getLogger(__name__)

MAX_INSTRUCTION_TOKENS = 32


@dataclass
class EncodedInstructions:
    """Token states (batch, tokens, 384), their bool mask (batch, tokens), sentence embeddings (batch, 384), and
    optionally the instruction reader's reading (batch, 2): family index and grade index, where the number of
    families (grades) means "not read" (see `ConditionEncoderNetwork`)."""

    token_states: torch.Tensor
    token_mask: torch.Tensor
    sentence_embeddings: torch.Tensor
    reading_ids: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> EncodedInstructions:
        reading_ids = None if self.reading_ids is None else self.reading_ids.to(device)
        return EncodedInstructions(
            self.token_states.to(device), self.token_mask.to(device), self.sentence_embeddings.to(device), reading_ids
        )

    def index(self, indices: torch.Tensor | list[int]) -> EncodedInstructions:
        """Return the rows `indices`, e.g. to look up cached phrasings for a training batch."""
        reading_ids = None if self.reading_ids is None else self.reading_ids[indices]
        return EncodedInstructions(
            self.token_states[indices], self.token_mask[indices], self.sentence_embeddings[indices], reading_ids
        )

    def with_reading(self, reading_ids: torch.Tensor | None) -> EncodedInstructions:
        """Return a copy that carries `reading_ids` (batch, 2)."""
        return EncodedInstructions(self.token_states, self.token_mask, self.sentence_embeddings, reading_ids)


class BertLayer(nn.Module):
    """One post-norm BERT encoder layer, with parameter names matching transformers' `BertLayer`."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        # x: (batch, tokens, hidden); key_mask: bool (batch, 1, 1, tokens)
        batch, tokens, hidden = x.shape
        head_dim = hidden // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, tokens, self.heads, head_dim).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=key_mask
        )
        attended = attended.transpose(1, 2).reshape(batch, tokens, hidden)
        x = self.attention_norm(x + self.attention_out(attended))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


class MiniBert(nn.Module):
    """BERT embeddings and encoder layers; no pooler, because sentence embeddings are mean-pooled."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        if (
            config.get("hidden_act", "gelu") != "gelu"
            or config.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ValueError("only BERT models with gelu activations and absolute positions are supported")
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden)
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            BertLayer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """Return the token states after the first `layers` encoder layers (all by default)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings.weight[0]
        )
        x = self.embedding_norm(x)
        key_mask = attention_mask.bool()[:, None, None, :]
        for layer in self.layers[:layers]:
            x = layer(x, key_mask)
        return x  # (batch, tokens, hidden)

    def load_transformers_state_dict(self, weights: dict[str, torch.Tensor]) -> None:
        """Load weights saved by `transformers.BertModel` (keys with or without the `bert.` prefix)."""
        weights = {key.removeprefix("bert."): value for key, value in weights.items()}
        renamed = {
            "word_embeddings.weight": weights["embeddings.word_embeddings.weight"],
            "position_embeddings.weight": weights["embeddings.position_embeddings.weight"],
            "token_type_embeddings.weight": weights["embeddings.token_type_embeddings.weight"],
            "embedding_norm.weight": weights["embeddings.LayerNorm.weight"],
            "embedding_norm.bias": weights["embeddings.LayerNorm.bias"],
        }
        names = {
            "query": "attention.self.query",
            "key": "attention.self.key",
            "value": "attention.self.value",
            "attention_out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "intermediate": "intermediate.dense",
            "output": "output.dense",
            "output_norm": "output.LayerNorm",
        }
        for index in range(len(self.layers)):
            for ours, theirs in names.items():
                for suffix in ("weight", "bias"):
                    renamed[f"layers.{index}.{ours}.{suffix}"] = weights[f"encoder.layer.{index}.{theirs}.{suffix}"]
        self.load_state_dict({key: value.float() for key, value in renamed.items()})


class TextEncoder:
    """The frozen all-MiniLM-L6-v2 encoder, loaded from a local folder only (no hub access)."""

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu") -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        config = json.loads((folder / "config.json").read_text())
        with skipped_random_init():
            self.model = MiniBert(config)
        self.model.load_transformers_state_dict(load_file(str(folder / "model.safetensors")))
        self.model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)

    def _tokenize(
        self, instructions: list[str], max_tokens: int = MAX_INSTRUCTION_TOKENS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return word-piece ids and bool mask (batch, tokens), warning about instructions that were cut off."""
        self.tokenizer.enable_truncation(max_length=max_tokens)
        encodings = self.tokenizer.encode_batch(list(instructions))
        for text, encoding in zip(instructions, encodings):
            if encoding.overflowing:
                # Decoded back to words: the "##" word pieces would show as "ga ##rish".
                dropped = " ".join(self.tokenizer.decode(part.ids) for part in encoding.overflowing)
                warnings.warn(
                    f"instruction {text[:60]!r} is longer than {max_tokens} word pieces; ignored: {dropped!r}",
                    HywuWarning,
                    stacklevel=3,
                )
        input_ids = torch.tensor([e.ids for e in encodings], device=self.device)
        mask = torch.tensor([e.attention_mask for e in encodings], device=self.device).bool()
        return input_ids, mask

    @torch.no_grad()
    def encode(self, instructions: list[str], max_tokens: int = MAX_INSTRUCTION_TOKENS) -> EncodedInstructions:
        """Encode instructions; anything past `max_tokens` word pieces is cut off."""
        input_ids, mask = self._tokenize(instructions, max_tokens)
        states = self.model(input_ids, mask)  # (batch, tokens, 384)
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return EncodedInstructions(states, mask, F.normalize(pooled, dim=-1))

    @torch.no_grad()
    def encode_layers(
        self, instructions: list[str], layers: int, max_tokens: int = MAX_INSTRUCTION_TOKENS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return token states (batch, tokens, 384) after the first `layers` layers and their bool mask; anything
        past `max_tokens` word pieces is cut off."""
        input_ids, mask = self._tokenize(instructions, max_tokens)
        return self.model(input_ids, mask, layers), mask
