"""Typing mistakes for instructions: the reader trains on misspelled copies of its phrasings and is measured on them.

A real user types "make it brigher" or "vintgae film". The text encoder's WordPiece tokenizer splits a misspelled
word into pieces unlike the word's own token, so a reader that only saw clean spelling reads such a request as
another edit or as none. `misspell` makes one mistake of four kinds: two neighbouring letters swapped, a letter
dropped, a letter doubled, or a letter replaced by a key next to it on a QWERTY keyboard.

Plain standard library only: no torch import.
"""

from __future__ import annotations

import random
import re
import string
from typing import Literal


TypoKind = Literal["swap", "drop", "double", "neighbour"]
TYPO_KINDS: tuple[TypoKind, ...] = ("swap", "drop", "double", "neighbour")

# Only words of at least this many letters get a typo: a mistake in "it" or "a" changes no meaning a reader needs.
MIN_WORD_LETTERS = 4

_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_LETTER_WORD = re.compile(r"[A-Za-z]+")


def _keyboard_neighbours() -> dict[str, str]:
    """Return, for each lower-case letter, the letters left and right of it and on the rows above and below."""
    neighbours: dict[str, str] = {}
    for row_index, row in enumerate(_QWERTY_ROWS):
        for column, letter in enumerate(row):
            near = [row[c] for c in (column - 1, column + 1) if 0 <= c < len(row)]
            for other_index in (row_index - 1, row_index + 1):
                if 0 <= other_index < len(_QWERTY_ROWS):
                    other = _QWERTY_ROWS[other_index]
                    near += [other[c] for c in (column - 1, column, column + 1) if 0 <= c < len(other)]
            neighbours[letter] = "".join(dict.fromkeys(near))
    return neighbours


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()


def misspell_word(word: str, kind: TypoKind, rng: random.Random) -> str:
    """Return `word` with one typing mistake of `kind`; the first letter is kept, so the word stays recognisable."""
    if len(word) < 2:
        return word
    position = rng.randrange(1, len(word))  # index of the letter the mistake hits

    if kind == "swap":
        position = min(position, len(word) - 2) if len(word) > 2 else 0
        if word[position] == word[position + 1]:
            return word
        return word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    if kind == "drop":
        return word[:position] + word[position + 1 :]
    if kind == "double":
        return word[: position + 1] + word[position:]
    if kind == "neighbour":
        letter = word[position]
        near = KEYBOARD_NEIGHBOURS.get(letter.lower(), "")
        if not near:
            return word
        typed = rng.choice(near)
        return word[:position] + (typed.upper() if letter.isupper() else typed) + word[position + 1 :]
    raise ValueError(f"invalid typo kind {kind!r}: expected one of {TYPO_KINDS}")


def misspell(text: str, rng: random.Random, kinds: tuple[TypoKind, ...] = TYPO_KINDS) -> str:
    """Return `text` with one typing mistake, of a kind drawn from `kinds`, in one word of at least
    `MIN_WORD_LETTERS` letters. Text without such a word, or a mistake that changes nothing (two equal letters
    swapped, as in "still"), is returned unchanged."""
    words = [match for match in _LETTER_WORD.finditer(text) if len(match.group()) >= MIN_WORD_LETTERS]
    if not words:
        return text

    match = rng.choice(words)
    typed = misspell_word(match.group(), rng.choice(kinds), rng)
    return text[: match.start()] + typed + text[match.end() :]


def keyboard_mash(rng: random.Random) -> str:
    """Return one to three random "words" typed without meaning: runs of neighbouring keys ("asdf", "jkl") or
    random letters ("xqzvt"). The reader learns to read such input as no edit, which typo training alone would
    otherwise teach it to map onto the nearest family."""
    words = []
    for _ in range(rng.randint(1, 3)):
        length = rng.randint(3, 9)
        if rng.random() < 0.5:
            row = rng.choice(_QWERTY_ROWS)
            start = rng.randrange(max(1, len(row) - length + 1))
            words.append(row[start : start + length])
        else:
            words.append("".join(rng.choice(string.ascii_lowercase) for _ in range(length)))
    return " ".join(words)
