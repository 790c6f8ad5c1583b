"""Training batches: random crops of real photos, paired with a sampled instruction and its ground-truth edit."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hywu_cli.edits import GRADE_STRENGTH, apply_edit
from hywu_cli.instruction_reader import canonical_phrasing
from hywu_cli.phrasings import FAMILY_PHRASINGS, GRADES


logger = logging.getLogger(__name__)


def load_rgb(path: Path, short_side: int) -> torch.Tensor:
    """Load a photo as uint8 (3, height, width), resized so that its shorter side is `short_side` pixels."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = short_side / min(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


class PhotoBank:
    """Photos held in memory at a reduced size, cut into random crops with scale jitter and horizontal flips.

    Args:
        paths: photo files.
        short_side: every photo is stored with this shorter side (pixels).
        min_crop: smallest crop side as a fraction of the photo's shorter side.
    """

    def __init__(self, paths: list[Path], short_side: int = 512, min_crop: float = 0.35) -> None:
        if not paths:
            raise ValueError(
                "no training photos found; run `python -m hywu_cli.photos --out data/photos` or pass --photos DIR"
            )
        self.paths = list(paths)
        self.photos = [load_rgb(path, short_side) for path in self.paths]
        self.min_crop = min_crop
        logger.info("loaded %d photos", len(self.photos))

    def random_crops(self, count: int, size: int, rng: random.Random) -> torch.Tensor:
        """Return `count` float crops (count, 3, size, size) in [0, 1]."""
        crops = []
        for _ in range(count):
            photo = self.photos[rng.randrange(len(self.photos))]
            height, width = photo.shape[-2:]
            side = round(min(height, width) * rng.uniform(self.min_crop, 1.0))
            top, left = rng.randint(0, height - side), rng.randint(0, width - side)
            crop = photo[:, top : top + side, left : left + side].float().div(255).unsqueeze(0)
            crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            if rng.random() < 0.5:
                crop = crop.flip(-1)
            crops.append(crop)
        return torch.cat(crops)


@dataclass
class EditBatch:
    """One training batch: inputs, targets, and what was asked for each sample."""

    images: torch.Tensor  # (batch, 3, size, size)
    targets: torch.Tensor  # (batch, 3, size, size)
    families: list[str]
    phrasing_ids: list[int]  # rows of the phrasing table, to look up cached text encodings
    seeds: list[int]


class PhrasingTable:
    """Training phrasings with their family, strength and row index.

    Args:
        families: families to include.
        split: "train" or "eval" hand-written phrasings.
        composed_per_family: also add this many sentences per family from `hywu_cli.phrasing_grammar`
            (training only).
    """

    def __init__(self, families: list[str], split: str = "train", composed_per_family: int = 0) -> None:
        from hywu_cli.phrasing_grammar import compose_phrasings

        self.texts: list[str] = []
        self.families: list[str] = []
        self.strengths: list[float] = []
        self.rows_by_family: dict[str, list[int]] = {}
        self.composed_rows_by_family: dict[str, list[int]] = {}
        self.canonical_rows_by_family: dict[str, list[int]] = {}
        for family in families:
            self.rows_by_family[family] = self._add(family, getattr(FAMILY_PHRASINGS[family], split))
            composed = compose_phrasings(family, composed_per_family) if composed_per_family else ()
            self.composed_rows_by_family[family] = self._add(family, composed)
            self.canonical_rows_by_family[family] = self._canonical_rows(family)

    def _add(self, family: str, phrasings) -> list[int]:
        rows = []
        for phrasing in phrasings:
            rows.append(len(self.texts))
            self.texts.append(phrasing.text)
            self.families.append(family)
            self.strengths.append(GRADE_STRENGTH[phrasing.grade])
        return rows

    def _canonical_rows(self, family: str) -> list[int]:
        """Return the rows of the family's canonical phrasings (one per grade) among its hand-written rows."""
        texts = {canonical_phrasing(family, grade) for grade in GRADES}
        return [row for row in self.rows_by_family[family] if self.texts[row] in texts]

    def sample_row(
        self, family: str, rng: random.Random, hand_written_share: float = 0.5, canonical_share: float = 0.0
    ) -> int:
        """Draw a canonical phrasing with probability `canonical_share`; otherwise a hand-written phrasing with
        probability `hand_written_share`, else a composed one if any."""
        canonical = self.canonical_rows_by_family.get(family)
        if canonical and canonical_share > 0 and rng.random() < canonical_share:
            return rng.choice(canonical)
        composed = self.composed_rows_by_family.get(family)
        if composed and rng.random() >= hand_written_share:
            return rng.choice(composed)
        return rng.choice(self.rows_by_family[family])


def sample_batch(
    bank: PhotoBank,
    table: PhrasingTable,
    families: list[str],
    batch_size: int,
    size: int,
    rng: random.Random,
    hand_written_share: float = 0.5,
    canonical_share: float = 0.0,
) -> EditBatch:
    """Sample photos, families and phrasings uniformly, and compute the ground truth of each sample.

    `canonical_share` is the chance of the canonical phrasing of a random grade (see `PhrasingTable.sample_row`),
    and `hand_written_share` the chance of a hand-written phrasing otherwise, when the table also contains
    composed ones.
    """
    images = bank.random_crops(batch_size, size, rng)
    chosen = [rng.choice(families) for _ in range(batch_size)]
    rows = [table.sample_row(family, rng, hand_written_share, canonical_share) for family in chosen]
    seeds = [rng.randrange(2**31) for _ in range(batch_size)]

    targets = torch.empty_like(images)
    for family in set(chosen):
        indices = [i for i, name in enumerate(chosen) if name == family]
        strength = torch.tensor([table.strengths[rows[i]] for i in indices])
        targets[indices] = apply_edit(family, images[indices], strength, [seeds[i] for i in indices])
    return EditBatch(images, targets, chosen, rows, seeds)
