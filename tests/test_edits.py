import pytest
import torch

from hywu_cli import ops
from hywu_cli.edits import CONFLICTING_PAIRS, EDIT_FAMILIES, GRADE_STRENGTH, PRETRAINING_FAMILIES, apply_edit
from hywu_cli.phrasings import FAMILY_PHRASINGS


@pytest.fixture(scope="module")
def photo():
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 8, 10, generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(180, 240), mode="bicubic", align_corners=False)
    return (image + 0.05 * torch.rand(1, 3, 180, 240, generator=generator)).clamp(0, 1)


def test_catalogue_covers_required_families():
    required = {
        "brighter", "darker", "warmer", "cooler", "vivid", "muted", "black_and_white", "sepia", "blur", "sharpen",
        "more_contrast", "less_contrast", "vignette", "invert", "night", "snowy", "rainy", "foggy", "golden_hour",
        "autumn", "vintage_film", "pencil_sketch", "cartoon", "film_grain",
    }  # fmt: skip

    assert required <= set(EDIT_FAMILIES)
    assert set(PRETRAINING_FAMILIES) < set(EDIT_FAMILIES)
    assert {name for name, family in EDIT_FAMILIES.items() if family.stochastic} == {"snowy", "rainy", "film_grain"}


@pytest.mark.parametrize("family", sorted(EDIT_FAMILIES))
def test_edit_changes_image_in_range_and_deterministic(family, photo):
    out = apply_edit(family, photo, GRADE_STRENGTH["normal"], [5])
    again = apply_edit(family, photo, GRADE_STRENGTH["normal"], [5])

    assert out.shape == photo.shape
    assert out.min() >= 0
    assert out.max() <= 1
    assert torch.equal(out, again)
    assert (out - photo).abs().mean() > 0.005


@pytest.mark.parametrize("family", sorted(EDIT_FAMILIES))
def test_stronger_grade_changes_more(family, photo):
    slight = (apply_edit(family, photo, GRADE_STRENGTH["slight"], [1]) - photo).abs().mean()
    strong = (apply_edit(family, photo, GRADE_STRENGTH["strong"], [1]) - photo).abs().mean()

    assert strong > slight


def test_conflicting_pairs_pull_in_opposite_directions(photo):
    def measure(family, metric):
        return metric(apply_edit(family, photo, 0.65)) - metric(photo)

    def brightness(x):
        return x.mean().item()

    def warmth(x):
        return (x[:, 0] - x[:, 2]).mean().item()

    def saturation(x):
        return (x - ops.luma(x)).abs().mean().item()

    def contrast(x):
        return ops.luma(x).std().item()

    def detail(x):
        return (x - ops.gaussian_blur(x, 0.01)).abs().mean().item()

    metrics = {
        ("brighter", "darker"): brightness,
        ("warmer", "cooler"): warmth,
        ("vivid", "muted"): saturation,
        ("more_contrast", "less_contrast"): contrast,
        ("sharpen", "blur"): detail,
    }
    assert {tuple(sorted(pair)) for pair in CONFLICTING_PAIRS} == {tuple(sorted(pair)) for pair in metrics}
    for (up, down), metric in metrics.items():
        assert measure(up, metric) > 0, up
        assert measure(down, metric) < 0, down


def test_stochastic_families_follow_seed(photo):
    for family in ("snowy", "rainy", "film_grain"):
        first = apply_edit(family, photo, 0.65, [1])
        second = apply_edit(family, photo, 0.65, [2])
        assert not torch.equal(first, second), family


def test_snowy_is_cold_and_has_flakes():
    photo = torch.full((1, 3, 300, 400), 0.4)
    snowy = apply_edit("snowy", photo, 0.65, [3])

    assert (snowy[:, 2] - snowy[:, 0]).median() > 0.01  # blue above red: a cold grade
    brightness = snowy.mean(1)
    flakes = (brightness > brightness.median() + 0.2).float().mean()
    assert flakes > 0.005  # bright flakes cover part of the frame


def test_apply_edit_rejects_unknown_family(photo):
    with pytest.raises(ValueError, match="unknown edit family"):
        apply_edit("make_it_pop", photo, 0.5)


def test_every_family_has_phrasings():
    for family in EDIT_FAMILIES:
        assert len(FAMILY_PHRASINGS[family].train) >= 10
        assert len(FAMILY_PHRASINGS[family].eval) >= 3
