"""Typing mistakes for the reader's training and evaluation (`hywu_cli.typos`)."""

import random

import pytest

from hywu_cli.typos import KEYBOARD_NEIGHBOURS, MIN_WORD_LETTERS, TYPO_KINDS, keyboard_mash, misspell, misspell_word


def _changed_words(before: str, after: str) -> list[tuple[str, str]]:
    return [(old, new) for old, new in zip(before.split(), after.split(), strict=True) if old != new]


@pytest.mark.parametrize("kind", TYPO_KINDS)
def test_misspell_word_kinds(kind):
    rng = random.Random(0)
    for word in ("brighter", "vintage", "grain", "Sepia"):
        typed = misspell_word(word, kind, rng)

        assert typed[0] == word[0]
        if kind == "swap":
            assert sorted(typed) == sorted(word)
        elif kind == "drop":
            assert len(typed) == len(word) - 1
        elif kind == "double":
            assert len(typed) == len(word) + 1
        else:
            changed = [(a, b) for a, b in zip(word, typed) if a != b]
            assert len(typed) == len(word)
            assert len(changed) == 1
            assert changed[0][1].lower() in KEYBOARD_NEIGHBOURS[changed[0][0].lower()]


def test_misspell_changes_one_long_word():
    rng = random.Random(3)
    text = "make it a bit warmer please"
    changed = 0
    for _ in range(50):
        typed = misspell(text, rng)
        words = _changed_words(text, typed)

        assert len(words) <= 1
        assert all(len(old) >= MIN_WORD_LETTERS for old, _ in words)
        changed += len(words)
    assert changed == 50  # no word here has two equal letters side by side, so every mistake shows


def test_misspell_is_seeded_and_leaves_short_words():
    texts = ["add film grain", "turn it into a pencil sketch", "b&w"]

    first = [misspell(text, random.Random(7)) for text in texts]
    second = [misspell(text, random.Random(7)) for text in texts]

    assert first == second
    assert misspell("b&w", random.Random(0)) == "b&w"
    assert misspell("go on", random.Random(0)) == "go on"


def test_misspell_word_rejects_unknown_kind():
    with pytest.raises(ValueError, match="invalid typo kind"):
        misspell_word("grain", "reverse", random.Random(0))


def test_keyboard_mash_shape():
    rng = random.Random(1)
    mashes = [keyboard_mash(rng) for _ in range(100)]

    for mash in mashes:
        words = mash.split(" ")
        assert 1 <= len(words) <= 3
        assert all(3 <= len(word) <= 9 for word in words)
        assert all(word.isascii() and word.isalpha() and word.islower() for word in words)
    assert len(set(mashes)) >= 90

    again = random.Random(1)
    assert mashes == [keyboard_mash(again) for _ in range(100)]
