"""Checks on the phrasing tables: coverage, grades, and that no phrasing leaks between sets or families."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hywu_cli import phrasings
from hywu_cli.phrasings import (
    ALL_OR_NOTHING_FAMILIES,
    CONFLICTING_PAIRS,
    FAMILY_PHRASINGS,
    GRADES,
    OUT_OF_SCOPE_CALIBRATION,
    OUT_OF_SCOPE_TEST,
    Phrasing,
    eval_phrasings,
    family_names,
    normalize_phrasing,
    training_phrasings,
)


EXPECTED_FAMILIES = [
    "brighter",
    "darker",
    "warmer",
    "cooler",
    "vivid",
    "muted",
    "black_and_white",
    "sepia",
    "blur",
    "sharpen",
    "more_contrast",
    "less_contrast",
    "vignette",
    "invert",
    "night",
    "snowy",
    "rainy",
    "foggy",
    "golden_hour",
    "autumn",
    "vintage_film",
    "pencil_sketch",
    "cartoon",
    "film_grain",
]

# Words whose presence fixes the grade a phrasing must carry. A phrasing without any of them may have any grade.
SLIGHT_MARKERS = re.compile(
    r"\b(slightly|slight|a bit|a little|a touch|a tad|subtle|hint|faint|smidge|gentle|gently|whisper)\b"
)
STRONG_MARKERS = re.compile(
    r"\b(much|very|a lot|lots|heavy|heavily|extreme|extremely|strong|strongly|intense|drastically|dramatically)\b"
)


def all_family_phrasings() -> list[tuple[str, str, Phrasing]]:
    """Return (family, "train" or "eval", phrasing) for every family phrasing."""
    rows = [(family, "train", phrasing) for family, phrasing in training_phrasings()]
    rows += [(family, "eval", phrasing) for family, phrasing in eval_phrasings()]
    return rows


def word_bag(text: str) -> tuple[str, ...]:
    return tuple(sorted(re.findall(r"[\w&/'-]+", normalize_phrasing(text))))


def test_family_keys_and_order():
    assert family_names() == EXPECTED_FAMILIES
    assert list(FAMILY_PHRASINGS) == EXPECTED_FAMILIES


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_family_metadata(family):
    entry = FAMILY_PHRASINGS[family]

    assert entry.family == family
    assert entry.title.strip() == entry.title
    assert entry.title[:1].isupper(), f"title {entry.title!r} should start with a capital letter"
    assert len(entry.title) <= 20, f"title {entry.title!r} is too long for a short label"
    assert entry.description.endswith("."), f"description of {family} should be a full sentence"
    assert ". " not in entry.description, f"description of {family} should be one sentence"


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_family_phrasing_counts(family):
    entry = FAMILY_PHRASINGS[family]

    assert len(entry.train) >= 14
    assert len(entry.eval) >= 5


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_train_grade_coverage(family):
    grade_counts = Counter(phrasing.grade for phrasing in FAMILY_PHRASINGS[family].train)

    if family in ALL_OR_NOTHING_FAMILIES:
        assert grade_counts["slight"] >= 2
        assert grade_counts["strong"] >= 2
        assert grade_counts["normal"] > grade_counts["slight"] + grade_counts["strong"]
    else:
        for grade in GRADES:
            assert grade_counts[grade] >= 3, f"{family} has {grade_counts[grade]} {grade} training phrasings"


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_eval_covers_every_grade(family):
    grades = {phrasing.grade for phrasing in FAMILY_PHRASINGS[family].eval}

    assert grades == set(GRADES)


def test_all_grades_valid():
    for family, split, phrasing in all_family_phrasings():
        assert phrasing.grade in GRADES, f"{family} {split} phrasing {phrasing.text!r}"


def test_grade_matches_intensity_words():
    for family, split, phrasing in all_family_phrasings():
        text = normalize_phrasing(phrasing.text)
        has_slight = SLIGHT_MARKERS.search(text) is not None
        has_strong = STRONG_MARKERS.search(text) is not None

        assert not (has_slight and has_strong), f"{family} {split} {phrasing.text!r} mixes slight and strong words"
        if has_slight:
            assert phrasing.grade == "slight", f"{family} {split} {phrasing.text!r} is graded {phrasing.grade}"
        if has_strong:
            assert phrasing.grade == "strong", f"{family} {split} {phrasing.text!r} is graded {phrasing.grade}"


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_family_name_is_training_phrasing(family):
    entry = FAMILY_PHRASINGS[family]
    train_texts = {normalize_phrasing(phrasing.text) for phrasing in entry.train}

    assert normalize_phrasing(entry.title) in train_texts


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_train_has_mixed_case(family):
    texts = [phrasing.text for phrasing in FAMILY_PHRASINGS[family].train]

    assert any(text.isupper() for text in texts), f"{family} has no upper-case training phrasing"
    assert any(text.islower() for text in texts), f"{family} has no lower-case training phrasing"


def test_no_duplicate_phrasing_anywhere():
    owners: dict[str, list[str]] = {}
    for family, split, phrasing in all_family_phrasings():
        owners.setdefault(normalize_phrasing(phrasing.text), []).append(f"{family}/{split}")

    duplicates = {text: places for text, places in owners.items() if len(places) > 1}
    assert duplicates == {}


def test_train_eval_disjoint_across_families():
    train_texts = {normalize_phrasing(phrasing.text) for _, phrasing in training_phrasings()}
    eval_texts = {normalize_phrasing(phrasing.text) for _, phrasing in eval_phrasings()}

    assert train_texts.isdisjoint(eval_texts)


def test_eval_is_not_reordered_train():
    train_bags = {word_bag(phrasing.text): phrasing.text for _, phrasing in training_phrasings()}

    for family, phrasing in eval_phrasings():
        bag = word_bag(phrasing.text)
        assert bag not in train_bags, f"{family} eval {phrasing.text!r} reorders train {train_bags[bag]!r}"


def test_out_of_scope_sizes():
    assert len(OUT_OF_SCOPE_CALIBRATION) == 30
    assert len(OUT_OF_SCOPE_TEST) == 50


@pytest.mark.parametrize("instructions", [OUT_OF_SCOPE_CALIBRATION, OUT_OF_SCOPE_TEST])
def test_out_of_scope_no_duplicates(instructions):
    normalized = [normalize_phrasing(text) for text in instructions]

    assert len(set(normalized)) == len(normalized)
    assert all(normalized), "an out-of-scope instruction is empty"


def test_out_of_scope_sets_disjoint():
    calibration = {normalize_phrasing(text) for text in OUT_OF_SCOPE_CALIBRATION}
    test = {normalize_phrasing(text) for text in OUT_OF_SCOPE_TEST}

    assert calibration.isdisjoint(test)


def test_out_of_scope_not_family_phrasing():
    family_texts = {normalize_phrasing(phrasing.text) for _, _, phrasing in all_family_phrasings()}
    family_texts |= {normalize_phrasing(entry.title) for entry in FAMILY_PHRASINGS.values()}

    for text in OUT_OF_SCOPE_CALIBRATION + OUT_OF_SCOPE_TEST:
        assert normalize_phrasing(text) not in family_texts, f"out-of-scope {text!r} is a family phrasing"


def test_conflicting_pairs():
    expected = {
        ("brighter", "darker"),
        ("warmer", "cooler"),
        ("blur", "sharpen"),
        ("vivid", "muted"),
        ("more_contrast", "less_contrast"),
    }

    assert set(CONFLICTING_PAIRS) == expected
    assert len(CONFLICTING_PAIRS) == len(expected)
    for first, second in CONFLICTING_PAIRS:
        assert first in FAMILY_PHRASINGS
        assert second in FAMILY_PHRASINGS
        assert first != second


def test_all_or_nothing_families_exist():
    assert ALL_OR_NOTHING_FAMILIES <= set(FAMILY_PHRASINGS)


def test_helpers_match_tables():
    expected_train = [(entry.family, phrasing) for entry in FAMILY_PHRASINGS.values() for phrasing in entry.train]
    expected_eval = [(entry.family, phrasing) for entry in FAMILY_PHRASINGS.values() for phrasing in entry.eval]

    assert training_phrasings() == expected_train
    assert eval_phrasings() == expected_eval


def test_normalize_phrasing():
    assert normalize_phrasing("  Make  it\tWARMER. ") == "make it warmer"
    assert normalize_phrasing("b/w please!") == "b/w please"
    assert normalize_phrasing("B&W") == "b&w"


def test_phrasing_rejects_unknown_grade():
    with pytest.raises(ValueError, match="invalid grade 'huge'"):
        Phrasing("make it warmer", "huge")  # type: ignore[arg-type]


def test_phrasing_rejects_blank_text():
    with pytest.raises(ValueError, match="empty"):
        Phrasing("   ", "normal")


def test_phrasing_is_frozen():
    phrasing = Phrasing("make it warmer", "normal")

    with pytest.raises(AttributeError):
        phrasing.grade = "strong"  # type: ignore[misc]


def test_module_does_not_import_torch():
    # Load the file directly, so the result does not depend on what the package __init__ imports.
    module_path = Path(phrasings.__file__)
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('phrasings_only', {str(module_path)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['phrasings_only'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print('torch' in sys.modules)\n"
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
