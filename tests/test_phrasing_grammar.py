"""Checks on the composed training phrasings and on the blind test set."""

from __future__ import annotations

from collections import Counter

import pytest

from hywu_cli.evaluation import phrasings_for
from hywu_cli.phrasing_grammar import VOCABULARY, compose_phrasings, held_out_texts
from hywu_cli.phrasings import FAMILY_PHRASINGS, GRADES, normalize_phrasing
from hywu_cli.phrasings_blind import BLIND_TEST


def test_every_family_has_a_vocabulary():
    assert set(VOCABULARY) == set(FAMILY_PHRASINGS)


@pytest.mark.parametrize("family", list(FAMILY_PHRASINGS))
def test_composed_phrasings_distinct_and_balanced(family):
    phrasings = compose_phrasings(family, 150)

    keys = [normalize_phrasing(p.text) for p in phrasings]
    assert len(phrasings) == 150
    assert len(set(keys)) == len(keys)
    assert not set(keys) & held_out_texts()
    grades = Counter(p.grade for p in phrasings)
    assert min(grades[grade] for grade in GRADES) >= 40


def test_composition_is_deterministic_per_seed():
    assert compose_phrasings("snowy", 30) == compose_phrasings("snowy", 30)
    assert compose_phrasings("snowy", 30, seed=1) != compose_phrasings("snowy", 30)


def test_composed_text_fully_filled():
    for family in FAMILY_PHRASINGS:
        for phrasing in compose_phrasings(family, 60):
            assert "{" not in phrasing.text
            assert "}" not in phrasing.text
            assert "  " not in phrasing.text


def test_blind_set_grades_per_family():
    assert set(BLIND_TEST) == set(FAMILY_PHRASINGS)
    for family, entries in BLIND_TEST.items():
        assert Counter(grade for _, grade in entries) == {"slight": 2, "normal": 2, "strong": 2}, family


def test_blind_split_skips_training_wording():
    training = {normalize_phrasing(p.text) for entry in FAMILY_PHRASINGS.values() for p in entry.train}
    evaluation = {normalize_phrasing(p.text) for entry in FAMILY_PHRASINGS.values() for p in entry.eval}
    blind = {normalize_phrasing(text) for entries in BLIND_TEST.values() for text, _ in entries}

    scored = {normalize_phrasing(p.text) for family in FAMILY_PHRASINGS for p in phrasings_for(family, "blind")}

    assert not scored & training
    assert not blind & evaluation
    assert blind <= held_out_texts()
    assert all(len(phrasings_for(family, "blind")) >= 3 for family in FAMILY_PHRASINGS)


def test_writers_cover_families_and_grades():
    from hywu_cli.phrasings_writers import FOURTH_WRITER, SECOND_WRITER, THIRD_WRITER, reader_phrasings

    for writer in (SECOND_WRITER, THIRD_WRITER, FOURTH_WRITER):
        assert set(writer) == set(FAMILY_PHRASINGS)
    for family in FAMILY_PHRASINGS:
        grades = Counter(p.grade for p in reader_phrasings(family))
        assert min(grades[grade] for grade in GRADES) >= 20, family


def test_near_copy_of_held_out_phrasing():
    from hywu_cli.phrasings_writers import is_near_copy

    assert is_near_copy("dim it a smidge", "darker")  # held out: "dim it just a smidge"
    assert not is_near_copy("dim it a smidge", "brighter")
    assert not is_near_copy("lower the exposure by half a stop", "darker")


def test_writers_phrasings_unseen_unambiguous():
    from hywu_cli.phrasings_writers import reader_phrasings

    owner: dict[str, str] = {}
    for family in FAMILY_PHRASINGS:
        for phrasing in reader_phrasings(family):
            key = normalize_phrasing(phrasing.text)
            assert key not in held_out_texts()
            assert owner.setdefault(key, family) == family, f"{phrasing.text!r} is in {family} and {owner[key]}"
    training = {normalize_phrasing(p.text): family for family, e in FAMILY_PHRASINGS.items() for p in e.train}
    assert not {key for key, family in owner.items() if training.get(key, family) != family}


def test_second_blind_set_grades_per_family():
    from hywu_cli.phrasings_blind2 import SECOND_BLIND_TEST

    assert set(SECOND_BLIND_TEST) == set(FAMILY_PHRASINGS)
    for family, entries in SECOND_BLIND_TEST.items():
        assert Counter(grade for _, grade in entries) == {"slight": 2, "normal": 2, "strong": 2}, family


def test_second_blind_split_skips_reader_training():
    from hywu_cli.evaluation import reader_training_texts

    scored = {normalize_phrasing(p.text) for family in FAMILY_PHRASINGS for p in phrasings_for(family, "blind2")}

    assert len(scored) >= 120
    assert not scored & reader_training_texts()
    assert all(len(phrasings_for(family, "blind2")) >= 3 for family in FAMILY_PHRASINGS)
