"""Quality metrics against the procedural ground truth, on held-out photos and phrasings.

For deterministic families the score is PSNR (and SSIM) of the edited photo against the catalogue's ground truth.
Stochastic families (snowy, rainy, film_grain) draw seeded overlays. The editor draws them with the same seed, so
plain PSNR would reward that shared randomness. Their fair metric therefore has two parts:
- `lowpass_psnr`: PSNR after a Gaussian blur (sigma 1% of the shorter side) of both images, which removes flakes,
  streaks and grain and compares the grade underneath;
- `texture_ratio`: the standard deviation of the high-pass residual (image minus that blur) of the output divided
  by that of the ground truth; 1.0 means as much overlay texture as asked for, 0 means none.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from hywu_cli import ops
from hywu_cli.dataset import load_rgb
from hywu_cli.edits import EDIT_FAMILIES, GRADE_STRENGTH, apply_edit
from hywu_cli.phrasings import FAMILY_PHRASINGS, Phrasing, normalize_phrasing


logger = logging.getLogger(__name__)

LOWPASS_SIGMA = 0.01
EVAL_SHORT_SIDE = 384

# edit_function(image (1, 3, h, w), instruction, seed) -> edited image (1, 3, h, w)
EditFunction = Callable[[torch.Tensor, str, int], torch.Tensor]


def psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]; capped at 100 dB for identical images."""
    mse = F.mse_loss(output.float(), target.float()).item()
    return 100.0 if mse < 1e-10 else 10 * math.log10(1.0 / mse)


def ssim(output: torch.Tensor, target: torch.Tensor) -> float:
    """Structural similarity on luma with an 11-tap Gaussian window (sigma 1.5), as in Wang et al. 2004."""
    x, y = ops.luma(output.float()), ops.luma(target.float())
    offsets = torch.arange(11, dtype=torch.float32) - 5
    kernel = torch.exp(-0.5 * (offsets / 1.5) ** 2)
    kernel = kernel / kernel.sum()
    window = (kernel[:, None] * kernel[None, :]).view(1, 1, 11, 11)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value.mean().item()


def overlay_metrics(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Return (lowpass_psnr, texture_ratio) for a stochastic family; see the module docstring."""
    output_low = ops.gaussian_blur(output.float(), LOWPASS_SIGMA)
    target_low = ops.gaussian_blur(target.float(), LOWPASS_SIGMA)
    target_texture = (target.float() - target_low).std().item()
    output_texture = (output.float() - output_low).std().item()
    return psnr(output_low, target_low), output_texture / max(target_texture, 1e-6)


@dataclass
class FamilyScore:
    """Mean metrics of one family over photos x phrasings."""

    family: str
    psnr: float
    ssim: float
    samples: int
    lowpass_psnr: float | None = None
    texture_ratio: float | None = None
    # Mean PSNR and sample count per strength grade: a slight edit is easier to match than a strong one, so two
    # phrasing sets are compared grade by grade (`wording_ratio`).
    psnr_by_grade: dict[str, float] = field(default_factory=dict)
    samples_by_grade: dict[str, int] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    """Per-family scores and their mean."""

    families: dict[str, FamilyScore] = field(default_factory=dict)

    @property
    def mean_psnr(self) -> float:
        return sum(score.psnr for score in self.families.values()) / max(1, len(self.families))

    def to_dict(self) -> dict:
        return {
            "mean_psnr": round(self.mean_psnr, 3),
            "families": {name: _rounded(vars(score)) for name, score in self.families.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> EvaluationResult:
        """Rebuild a result written by `to_dict` (the "methods" entries of `hywu eval --json-file`)."""
        return cls({name: FamilyScore(**score) for name, score in data["families"].items()})


def _rounded(values: dict) -> dict:
    """Round floats to 4 decimals, also inside nested dictionaries."""
    rounded = {}
    for key, value in values.items():
        if isinstance(value, float):
            value = round(value, 4)
        elif isinstance(value, dict):
            value = _rounded(value)
        rounded[key] = value
    return rounded


def wording_ratio(held_out: EvaluationResult, training: EvaluationResult) -> dict:
    """Compare held-out phrasings with training phrasings of the same family and grade.

    A slight edit scores higher than a strong one whatever the wording, so the plain ratio of two means depends on
    each set's mix of grades. Here each family's training score is re-weighted to the held-out set's grade counts
    before the family means are averaged. Families or grades missing from `training` are skipped.

    Returns the held-out mean, the grade-matched training mean, their ratio and the families compared.
    """
    held_scores, matched_scores = [], []
    for name, score in held_out.families.items():
        reference = training.families.get(name)
        if reference is None:
            continue
        grades = [grade for grade in score.samples_by_grade if grade in reference.psnr_by_grade]
        count = sum(score.samples_by_grade[grade] for grade in grades)
        if not count:
            continue
        held_scores.append(sum(score.psnr_by_grade[g] * score.samples_by_grade[g] for g in grades) / count)
        matched_scores.append(sum(reference.psnr_by_grade[g] * score.samples_by_grade[g] for g in grades) / count)
    if not held_scores:
        raise ValueError("the two results share no family and grade; score the same families on both phrasing sets")
    held_out_mean, matched_mean = sum(held_scores) / len(held_scores), sum(matched_scores) / len(matched_scores)
    return {
        "held_out_psnr": round(held_out_mean, 3),
        "training_psnr_grade_matched": round(matched_mean, 3),
        "ratio": round(held_out_mean / matched_mean, 4),
        "families": len(held_scores),
    }


def load_photos(paths: list[Path], short_side: int = EVAL_SHORT_SIDE) -> list[torch.Tensor]:
    """Load evaluation photos as float (1, 3, height, width) with the given shorter side."""
    return [load_rgb(path, short_side).float().div(255).unsqueeze(0) for path in paths]


SPLITS = ("eval", "blind", "blind2", "train")


@functools.cache
def reader_training_texts() -> frozenset[str]:
    """Return the normalised text of every sentence the instruction reader trains on by default (all writers)."""
    from hywu_cli.instruction_reader import COMPOSED_PER_FAMILY, UNDO_PER_FAMILY, training_examples
    from hywu_cli.phrasings import OUT_OF_SCOPE_TRAIN

    examples = training_examples(COMPOSED_PER_FAMILY, OUT_OF_SCOPE_TRAIN, UNDO_PER_FAMILY)
    return frozenset(normalize_phrasing(text) for text in examples.texts)


def phrasings_for(family: str, split: str) -> list[Phrasing]:
    """Return a family's phrasings of one split: "eval" (held out), "blind" (held out, written without seeing
    the other sets), "blind2" (held out, written last, from the family descriptions alone) or "train".

    The blind sets were written independently, so a few of their lines equal a training sentence. Those lines are
    left out, so the blind splits score only wording the model never saw. For "blind" they are the hand-written
    training phrasings. "blind2" was written after the reader gained more training sentences, so for it they are
    every sentence the reader trains on.
    """
    if split == "blind":
        from hywu_cli.phrasings_blind import BLIND_TEST

        training = {normalize_phrasing(p.text) for p in FAMILY_PHRASINGS[family].train}
        return [Phrasing(text, grade) for text, grade in BLIND_TEST[family] if normalize_phrasing(text) not in training]
    if split == "blind2":
        from hywu_cli.phrasings_blind2 import SECOND_BLIND_TEST

        training = reader_training_texts()
        entries = SECOND_BLIND_TEST[family]
        return [Phrasing(text, grade) for text, grade in entries if normalize_phrasing(text) not in training]
    if split not in SPLITS:
        raise ValueError(f"invalid phrasing split {split!r}; expected one of {', '.join(SPLITS)}")
    return list(getattr(FAMILY_PHRASINGS[family], split))


def evaluate(
    edit_function: EditFunction,
    photos: list[torch.Tensor],
    families: list[str] | None = None,
    split: str = "eval",
    max_phrasings: int | None = None,
) -> EvaluationResult:
    """Score `edit_function` on every photo x phrasing of each family against the ground truth.

    Args:
        edit_function: edits one image for one instruction and seed.
        photos: float images (1, 3, height, width).
        families: families to score, all by default.
        split: which phrasings to use; see `phrasings_for`.
        max_phrasings: use only the first N phrasings of each family (for quick checks).
    """
    result = EvaluationResult()
    for family in families or list(EDIT_FAMILIES):
        phrasings = phrasings_for(family, split)[:max_phrasings]
        stochastic = EDIT_FAMILIES[family].stochastic
        values: dict[str, list[float]] = {"psnr": [], "ssim": [], "lowpass_psnr": [], "texture_ratio": []}
        by_grade: dict[str, list[float]] = {}
        for photo_index, photo in enumerate(photos):
            for phrasing_index, phrasing in enumerate(phrasings):
                seed = 1000 * photo_index + phrasing_index
                target = apply_edit(family, photo, GRADE_STRENGTH[phrasing.grade], [seed])
                output = edit_function(photo, phrasing.text, seed)
                score = psnr(output, target)
                values["psnr"].append(score)
                by_grade.setdefault(phrasing.grade, []).append(score)
                values["ssim"].append(ssim(output, target))
                if stochastic:
                    low, texture = overlay_metrics(output, target)
                    values["lowpass_psnr"].append(low)
                    values["texture_ratio"].append(texture)

        means = {key: (sum(items) / len(items) if items else None) for key, items in values.items()}
        result.families[family] = FamilyScore(
            family,
            means["psnr"],
            means["ssim"],
            len(values["psnr"]),
            means["lowpass_psnr"],
            means["texture_ratio"],
            psnr_by_grade={grade: sum(items) / len(items) for grade, items in by_grade.items()},
            samples_by_grade={grade: len(items) for grade, items in by_grade.items()},
        )
        logger.info("%s: PSNR %.2f dB over %d samples", family, result.families[family].psnr, len(values["psnr"]))
    return result


def markdown_table(results: dict[str, EvaluationResult]) -> str:
    """Format one or more named results as a Markdown table with one PSNR / SSIM column pair per result."""
    names = list(results)
    header = (
        "| family | "
        + " | ".join(f"{name} PSNR | {name} SSIM" for name in names)
        + " | overlay (low-pass PSNR, texture) |"
    )
    lines = [header, "|" + "---|" * (2 + 2 * len(names))]
    families = list(next(iter(results.values())).families)
    for family in families:
        cells = []
        for name in names:
            score = results[name].families[family]
            cells.append(f"{score.psnr:.2f} | {score.ssim:.3f}")
        last = results[names[-1]].families[family]
        overlay = f"{last.lowpass_psnr:.2f} dB, {last.texture_ratio:.2f}" if last.lowpass_psnr is not None else ""
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {overlay} |")
    means = " | ".join(f"**{results[name].mean_psnr:.2f}** | " for name in names)
    lines.append(f"| **mean** | {means} | |")
    return "\n".join(lines)
