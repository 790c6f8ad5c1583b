"""The edit catalogue: a deterministic, parameterised procedural operation per edit family.

These operations define the ground truth that the packaged editor is trained and evaluated against. Each takes
images (batch, 3, height, width) in [0, 1], a strength per sample in [0, 1], and a seed per sample (used only by
the stochastic families snowy, rainy and film_grain), and returns edited images clamped to [0, 1]. A phrasing's
grade picks the strength: `GRADE_STRENGTH`. The English phrasings live in `hywu_cli.phrasings`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hywu_cli import ops
from hywu_cli.phrasings import CONFLICTING_PAIRS, FAMILY_PHRASINGS


GRADE_STRENGTH = {"slight": 0.35, "normal": 0.65, "strong": 1.0}

# Families the base editor is trained on before it is frozen. The generator alone has to reach the other twelve.
PRETRAINING_FAMILIES = (
    "brighter",
    "darker",
    "warmer",
    "cooler",
    "vivid",
    "muted",
    "black_and_white",
    "more_contrast",
    "less_contrast",
    "blur",
    "sharpen",
    "vignette",
)

__all__ = ["CONFLICTING_PAIRS", "EDIT_FAMILIES", "GRADE_STRENGTH", "PRETRAINING_FAMILIES", "EditFamily", "apply_edit"]

EditFunction = Callable[[torch.Tensor, torch.Tensor, list[int]], torch.Tensor]


@dataclass(frozen=True)
class EditFamily:
    """One edit family: its name, whether it draws seeded random overlays, and its ground-truth operation."""

    name: str
    stochastic: bool
    function: EditFunction

    @property
    def title(self) -> str:
        return FAMILY_PHRASINGS[self.name].title


def _s(strength: torch.Tensor) -> torch.Tensor:
    """Reshape a (batch,) strength for broadcasting over (batch, 3, height, width)."""
    return strength.view(-1, 1, 1, 1)


def _lerp(start: torch.Tensor, end: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    return start + (end - start) * amount


def _full_amount(strength: torch.Tensor) -> torch.Tensor:
    """Blend amount of all-or-nothing edits: 0.85 for slight wording, complete for normal and strong."""
    return (0.5 + _s(strength)).clamp(max=1.0)


def _saturation(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    y = ops.luma(image)
    return y + (image - y) * factor


def _tint(image: torch.Tensor, red: float, green: float, blue: float) -> torch.Tensor:
    return image * image.new_tensor([red, green, blue]).view(1, 3, 1, 1)


def _coordinates(image: torch.Tensor) -> torch.Tensor:
    return ops.normalized_coordinates(*image.shape[-2:], device=image.device, dtype=image.dtype)


def brighter(x, strength, seeds):
    return 1 - (1 - x).clamp(0, 1) ** (1 + 1.2 * _s(strength))


def darker(x, strength, seeds):
    return x.clamp(0, 1) ** (1 + 1.2 * _s(strength))


def warmer(x, strength, seeds):
    s = _s(strength)
    return x * torch.cat([1 + 0.16 * s, 1 + 0.03 * s, 1 - 0.22 * s], dim=1)


def cooler(x, strength, seeds):
    s = _s(strength)
    return x * torch.cat([1 - 0.18 * s, 1 + 0.01 * s, 1 + 0.2 * s], dim=1)


def vivid(x, strength, seeds):
    return _saturation(x, 1 + 0.9 * _s(strength))


def muted(x, strength, seeds):
    return _saturation(x, 1 - 0.65 * _s(strength))


def black_and_white(x, strength, seeds):
    gray = ops.luma(x).expand_as(x)
    return _lerp(x, gray, _full_amount(strength))


def sepia(x, strength, seeds):
    y = ops.luma(x)
    toned = torch.cat([y * 1.07 + 0.03, y * 0.88 + 0.015, y * 0.66], dim=1)
    return _lerp(x, toned, _full_amount(strength))


def blur(x, strength, seeds):
    # Samples in a batch may ask for different sigmas, so blur one sample at a time.
    outputs = [ops.gaussian_blur(x[i : i + 1], 0.0025 + 0.0075 * float(strength[i])) for i in range(x.shape[0])]
    return torch.cat(outputs)


def sharpen(x, strength, seeds):
    return x + (0.6 + 1.4 * _s(strength)) * (x - ops.gaussian_blur(x, ops.SMALL_BLUR_SIGMA))


def _s_curve(x: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    # Monotonic for amount < 1: the slope 1 - amount * cos(2 pi x) stays positive.
    return x - amount * torch.sin(2 * math.pi * x) / (2 * math.pi)


def more_contrast(x, strength, seeds):
    return _s_curve(x.clamp(0, 1), 0.8 * _s(strength))


def less_contrast(x, strength, seeds):
    s = _s(strength)
    low, high = 0.14 * s, 1 - 0.1 * s
    return low + (high - low) * x


def vignette(x, strength, seeds):
    radius2 = _coordinates(x)[:, 2:3]
    return x * (1 - (0.3 + 0.5 * _s(strength)) * radius2**1.1)


def invert(x, strength, seeds):
    return _lerp(x, 1 - x, _full_amount(strength))


def _night_grade(x: torch.Tensor) -> torch.Tensor:
    dark = x.clamp(0, 1) ** 2.0 * 0.7
    return _tint(_saturation(dark, torch.tensor(0.45)), 0.72, 0.9, 1.3)


def night(x, strength, seeds):
    return _lerp(x, _night_grade(x), (0.45 + 0.55 * _s(strength)))


def _winter_grade(x: torch.Tensor) -> torch.Tensor:
    cold = _tint(_saturation(x, torch.tensor(0.7)), 0.9, 0.97, 1.1)
    return 1 - (1 - cold.clamp(0, 1)) ** 1.25


def snowy(x, strength, seeds):
    graded = _lerp(x, _winter_grade(x), (0.5 + 0.5 * _s(strength)))
    alpha = ops.snow_layer(seeds, *x.shape[-2:]).to(x) * (0.55 + 0.45 * _s(strength))
    return _lerp(graded, x.new_tensor(ops.SNOW_COLOUR).view(1, 3, 1, 1).expand_as(x), alpha)


def rainy(x, strength, seeds):
    wet = _tint(_saturation(x, torch.tensor(0.75)), 0.93, 0.96, 1.03).clamp(0, 1) ** 1.15
    graded = _lerp(x, wet, (0.5 + 0.5 * _s(strength)))
    alpha = ops.rain_layer(seeds, *x.shape[-2:]).to(x) * (0.35 + 0.35 * _s(strength))
    return _lerp(graded, x.new_tensor(ops.RAIN_COLOUR).view(1, 3, 1, 1).expand_as(x), alpha)


def foggy(x, strength, seeds):
    softened = _lerp(x, ops.gaussian_blur(x, ops.SMALL_BLUR_SIGMA), 0.5)
    height_from_top = _coordinates(x)[:, 1:2]
    # Haze is thickest at the top of the frame, where the scene is usually farthest away.
    thickness = (0.35 + 0.4 * _s(strength)) * (1 - 0.45 * height_from_top)
    fog_colour = x.new_tensor([0.83, 0.85, 0.87]).view(1, 3, 1, 1)
    return _lerp(softened, fog_colour.expand_as(x), thickness)


def golden_hour(x, strength, seeds):
    s = _s(strength)
    warm = _tint(1 - (1 - x.clamp(0, 1)) ** 1.15, 1.12, 1.0, 0.76)
    height_from_top = _coordinates(x)[:, 1:2]
    glow = x.new_tensor([0.1, 0.05, 0.0]).view(1, 3, 1, 1) * (1 - height_from_top)
    return _lerp(x, warm + glow, 0.45 + 0.55 * s)


def autumn(x, strength, seeds):
    red, green, blue = x.clamp(0, 1).unbind(1)
    # Foliage: pixels where green clearly leads red and blue turn orange-red, the rest warms slightly.
    foliage = ((green - torch.maximum(red, blue)) * 5 + 0.3).clamp(0, 1).unsqueeze(1)
    autumn_colour = torch.stack([0.9 * green + 0.25 * red, 0.5 * green + 0.15 * red, 0.55 * blue], dim=1)
    shifted = _lerp(_tint(x, 1.04, 1.0, 0.93), autumn_colour, foliage)
    return _lerp(x, shifted, 0.45 + 0.55 * _s(strength))


def vintage_film(x, strength, seeds):
    s = _s(strength)
    faded = 0.08 + 0.84 * _s_curve(x.clamp(0, 1), torch.tensor(0.35))
    toned = _tint(_saturation(faded, torch.tensor(0.6)), 1.06, 1.01, 0.86)
    radius2 = _coordinates(x)[:, 2:3]
    aged = toned * (1 - 0.25 * radius2)
    return _lerp(x, aged, 0.45 + 0.55 * s)


def pencil_sketch(x, strength, seeds):
    paper = (0.9 + 0.08 * ops.luma(x)).expand_as(x)
    sketch = paper - ops.edge_magnitude(x)
    return _lerp(x, sketch, _full_amount(strength))


def cartoon(x, strength, seeds):
    inked = ops.posterize(x) - 0.9 * ops.edge_magnitude(x)
    return _lerp(x, inked, _full_amount(strength))


def film_grain(x, strength, seeds):
    grain = ops.grain_layer(seeds, *x.shape[-2:]).to(x)
    return x + (0.03 + 0.06 * _s(strength)) * grain


_FUNCTIONS: dict[str, EditFunction] = {
    "brighter": brighter,
    "darker": darker,
    "warmer": warmer,
    "cooler": cooler,
    "vivid": vivid,
    "muted": muted,
    "black_and_white": black_and_white,
    "sepia": sepia,
    "blur": blur,
    "sharpen": sharpen,
    "more_contrast": more_contrast,
    "less_contrast": less_contrast,
    "vignette": vignette,
    "invert": invert,
    "night": night,
    "snowy": snowy,
    "rainy": rainy,
    "foggy": foggy,
    "golden_hour": golden_hour,
    "autumn": autumn,
    "vintage_film": vintage_film,
    "pencil_sketch": pencil_sketch,
    "cartoon": cartoon,
    "film_grain": film_grain,
}
_STOCHASTIC = {"snowy", "rainy", "film_grain"}

EDIT_FAMILIES: dict[str, EditFamily] = {
    name: EditFamily(name, name in _STOCHASTIC, function) for name, function in _FUNCTIONS.items()
}

if set(EDIT_FAMILIES) != set(FAMILY_PHRASINGS):
    raise RuntimeError(
        "edit families and phrasing families differ; update hywu_cli.edits and hywu_cli.phrasings together"
    )


def apply_edit(
    family: str, images: torch.Tensor, strength: torch.Tensor | float, seeds: list[int] | None = None
) -> torch.Tensor:
    """Apply the ground truth of `family` to images (batch, 3, height, width) and clamp to [0, 1]."""
    if family not in EDIT_FAMILIES:
        raise ValueError(f"unknown edit family {family!r}; expected one of {sorted(EDIT_FAMILIES)}")
    batch = images.shape[0]
    if not isinstance(strength, torch.Tensor):
        strength = torch.full((batch,), float(strength))
    strength = strength.to(images).reshape(batch)
    seeds = list(seeds) if seeds is not None else [0] * batch
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {batch} images")
    return EDIT_FAMILIES[family].function(images, strength, seeds).clamp(0, 1)
