"""The hybrid image-instruction condition that the parameter generator reads.

Instruction tokens come from the frozen sentence encoder all-MiniLM-L6-v2 (a 6-layer BERT, Apache-2.0, shipped
under `weights/<model>/text_encoder/`). Image tokens come from a small trainable CNN over a 64 x 64 thumbnail.
Both are projected to `cond_dim` and concatenated:

    condition = [summary token (batch, 1, cond_dim) ; instruction tokens (batch, text_tokens, cond_dim) ;
                 image tokens (batch, 16, cond_dim)]

The summary token projects the instruction's sentence embedding together with the photo's colour statistics; the
generator adds it to every parameter position as a direct per-instance signal.

When the model has an instruction reader, the summary token also gets a learned embedding of the edit it read
(family and grade, or "not read"), so each edit has parameters of its own at the generator's input. Text
embeddings of different edits overlap ("cartoon" and "pencil sketch"), and the generator learned them slowly: in
a 300-step continuation the embedding raised cartoon from 20.0 to 23.2 dB.

The sentence embedding (mean of the token states, L2-normalised, as sentence-transformers does for this model)
also conditions the base editor and drives the out-of-scope check.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from hywu_cli.text_encoder import EncodedInstructions, TextEncoder


logger = logging.getLogger(__name__)

# Multiplies the reading embedding. Under Adam a row moves by about the learning rate per step. Rows start at zero,
# and without the gain they would need thousands of steps to reach the scale of the other condition features.
READING_GAIN = 16.0

__all__ = ["ConditionEncoderNetwork", "EncodedInstructions", "TextEncoder"]


class ConditionEncoderNetwork(nn.Module):
    """Projects instruction token states and encodes a thumbnail into one condition sequence.

    A plain `nn.Module`; `hywu_cli.modeling.ConditionEncoder` adds diffusers' `ModelMixin` save/load.

    Args:
        text_dim: width of the instruction token states.
        cond_dim: width of every condition token.
        image_size: side of the square thumbnail the image branch reads.
        image_grid: the image branch yields image_grid x image_grid tokens.
        reading_families: edit families the instruction reader can report, in the order of
            `EncodedInstructions.reading_ids`; empty for a condition without the reading embedding.
        reading_grades: grades the reader can report, in the same way.
    """

    def __init__(
        self,
        text_dim: int = 384,
        cond_dim: int = 128,
        image_size: int = 64,
        image_grid: int = 4,
        reading_families: list[str] | tuple[str, ...] = (),
        reading_grades: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.hparams = SimpleNamespace(
            text_dim=text_dim,
            cond_dim=cond_dim,
            image_size=image_size,
            image_grid=image_grid,
            reading_families=list(reading_families),
            reading_grades=list(reading_grades),
        )
        self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, cond_dim))
        self.image_net = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(64, cond_dim, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(image_grid),
        )
        self.image_proj = nn.Linear(cond_dim + 6, cond_dim)
        self.image_pos = nn.Parameter(torch.randn(image_grid * image_grid, cond_dim) * 0.02)
        self.summary_proj = nn.Linear(text_dim + 6, cond_dim)
        self.type_embed = nn.Parameter(torch.randn(3, cond_dim) * 0.02)
        if reading_families:
            # One extra row each for "not read"; zero rows leave a condition trained without them unchanged.
            self.family_embed = nn.Embedding(len(reading_families) + 1, cond_dim)
            self.grade_embed = nn.Embedding(len(reading_grades) + 1, cond_dim)
            nn.init.zeros_(self.family_embed.weight)
            nn.init.zeros_(self.grade_embed.weight)

    @property
    def reads_edits(self) -> bool:
        """Whether the summary token takes the instruction reader's reading (`EncodedInstructions.reading_ids`)."""
        return bool(self.hparams.reading_families)

    def unread_ids(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Return reading ids (batch, 2) that mean "not read"."""
        ids = [len(self.hparams.reading_families), len(self.hparams.reading_grades)]
        return torch.tensor([ids] * batch, dtype=torch.long, device=device)

    def reading_ids_for(self, readings: list[tuple[str | None, str | None]]) -> torch.Tensor:
        """Return reading ids (batch, 2) for (family, grade) pairs. None or an unknown name becomes "not read"."""
        families, grades = self.hparams.reading_families, self.hparams.reading_grades
        rows = []
        for family, grade in readings:
            known = family in families and grade in grades
            rows.append([families.index(family), grades.index(grade)] if known else [len(families), len(grades)])
        return torch.tensor(rows, dtype=torch.long).view(-1, 2)

    def _thumbnail(self, images: torch.Tensor) -> torch.Tensor:
        size = self.hparams.image_size
        return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    @staticmethod
    def _colour_statistics(thumbnails: torch.Tensor) -> torch.Tensor:
        return torch.cat([thumbnails.mean(dim=(2, 3)), thumbnails.std(dim=(2, 3))], dim=1)  # (batch, 6)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Return image tokens (batch, image_grid**2, cond_dim) for images (batch, 3, height, width) in [0, 1]."""
        thumbnails = self._thumbnail(images)
        tokens = self.image_net(thumbnails * 2 - 1).flatten(2).transpose(1, 2)  # (batch, grid**2, cond_dim)
        # Global colour statistics give every image token the photo's overall exposure and cast.
        stats = self._colour_statistics(thumbnails)[:, None, :].expand(-1, tokens.shape[1], -1)
        return self.image_proj(torch.cat([tokens, stats], dim=-1)) + self.image_pos + self.type_embed[1]

    def forward(self, images: torch.Tensor, instructions: EncodedInstructions) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the condition (batch, 1 + text_tokens + image_tokens, cond_dim) and its bool mask."""
        stats = self._colour_statistics(self._thumbnail(images))
        summary = self.summary_proj(torch.cat([instructions.sentence_embeddings, stats], dim=1))[:, None, :]
        summary = summary + self.type_embed[2]
        if self.reads_edits:
            ids = instructions.reading_ids
            if ids is None:
                ids = self.unread_ids(summary.shape[0], summary.device)
            reading = self.family_embed(ids[:, 0]) + self.grade_embed(ids[:, 1])  # (batch, cond_dim)
            summary = summary + READING_GAIN * reading[:, None, :]
        text_tokens = self.text_proj(instructions.token_states) + self.type_embed[0]
        image_tokens = self.encode_image(images)
        condition = torch.cat([summary, text_tokens, image_tokens], dim=1)
        mask = torch.cat(
            [
                torch.ones(summary.shape[:2], dtype=torch.bool, device=summary.device),
                instructions.token_mask,
                torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=image_tokens.device),
            ],
            dim=1,
        )
        return condition, mask
