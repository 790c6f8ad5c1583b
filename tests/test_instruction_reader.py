"""The instruction reader: its link to the text encoder, training, saving, and the shipped reader's accuracy."""

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from hywu_cli.instruction_reader import (
    InstructionReaderNetwork,
    accuracy,
    canonical_phrasing,
    READER_MAX_TOKENS,
    held_out_examples,
    member_writer_sets,
    misspelled,
    reading_report,
    train_reader,
    training_examples,
    undo_examples,
)
from hywu_cli.network_io import load_network
from hywu_cli.phrasings import FAMILY_PHRASINGS, GRADES
from hywu_cli.text_encoder import MAX_INSTRUCTION_TOKENS, TextEncoder
from hywu_cli.typos import keyboard_mash


ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "weights" / "hywu-lite"

# The shipped reader reads the family of 80% of the held-out phrasings right with one typing mistake in each.
MISSPELLED_FAMILY_FLOOR = 0.78
# Of 200 keyboard mashes, the shipped reader reads none as an edit.
MASH_READ_MAX = 20

pytestmark = pytest.mark.skipif(not (MODEL / "manifest.json").is_file(), reason="weights/hywu-lite not built yet")


@pytest.fixture(scope="module")
def text_encoder():
    return TextEncoder(MODEL / "text_encoder")


@pytest.fixture(scope="module")
def shipped_reader():
    return load_network(InstructionReaderNetwork, MODEL / "instruction_reader")


def test_all_layers_match_encode(text_encoder):
    texts = ["make it snowy", "a much warmer and softer look please"]

    states, mask = text_encoder.encode_layers(texts, 6)
    encoded = text_encoder.encode(texts)

    assert torch.equal(mask, encoded.token_mask)
    assert torch.allclose(states, encoded.token_states)


def test_untrained_reader_pools_like_encoder(text_encoder):
    """Copied upper layers over the lower-layer states must give the text encoder's own mean-pooled states."""
    texts = ["make it brighter", "turn the photo into a pencil drawing"]
    reader = InstructionReaderNetwork()
    reader.init_from_text_encoder(text_encoder)

    states, mask = text_encoder.encode_layers(texts, reader.hparams.shared_layers)
    pooled = reader.members[0].pool(states, mask)
    encoded = text_encoder.encode(texts)
    weights = encoded.token_mask.unsqueeze(-1).float()
    expected = (encoded.token_states * weights).sum(1) / weights.sum(1)

    assert torch.allclose(pooled, expected, atol=1e-5)


def test_ensemble_averages_member_probabilities(text_encoder):
    torch.manual_seed(0)
    reader = InstructionReaderNetwork(ensemble_size=2)
    reader.init_from_text_encoder(text_encoder)
    for member in reader.members:
        torch.nn.init.normal_(member.family_head.weight, std=0.5)
        torch.nn.init.normal_(member.grade_head.weight, std=0.5)
    states, mask = text_encoder.encode_layers(["add a vignette", "make it a lot warmer please"], 4)

    family, grade = reader(states, mask)
    outputs = [member(states, mask) for member in reader.members]

    expected_family = sum(f.softmax(-1) for f, _ in outputs) / 2
    expected_grade = sum(g.softmax(-1) for _, g in outputs) / 2
    assert torch.allclose(family.exp(), expected_family, atol=1e-6)
    assert torch.allclose(grade.exp(), expected_grade, atol=1e-6)
    assert not torch.allclose(outputs[0][0].softmax(-1), outputs[1][0].softmax(-1))


def test_member_writer_sets_leave_each_writer_out_once():
    from hywu_cli.phrasings_writers import WRITERS

    subsets = member_writer_sets(members=5)

    assert len(subsets) == 5
    for writer in WRITERS:
        assert sum(writer not in writers for writers in subsets) == 1
    for writers in subsets:
        assert 1 <= len(WRITERS) - len(writers) <= -(-len(WRITERS) // 5)


def test_canonical_phrasings_in_training_set():
    for family, entry in FAMILY_PHRASINGS.items():
        train = {p.text for p in entry.train}
        for grade in GRADES:
            assert canonical_phrasing(family, grade) in train


def test_undo_examples_map_to_opposites():
    from hywu_cli.phrasing_grammar import held_out_texts
    from hywu_cli.phrasings import normalize_phrasing

    examples = undo_examples(per_family=10_000)
    families = {text: family for text, family, _ in examples}

    assert families["too dark"] == "brighter"
    assert families["not so cold"] == "warmer"
    assert families["remove the fog"] is None
    assert not {normalize_phrasing(text) for text in families} & held_out_texts()


def test_short_training_learns_phrasings(text_encoder):
    examples = training_examples(0, (), writers=())
    reader = InstructionReaderNetwork()
    reader.init_from_text_encoder(text_encoder)
    before = accuracy(reader, text_encoder, examples)

    trained, _ = train_reader(
        text_encoder,
        steps=60,
        batch_size=32,
        composed_per_family=0,
        undo_per_family=0,
        evaluate=False,
        member_writers=[()],
        typo_copies=0,
        hand_written_copies=1,
        mash_examples=0,
    )
    after = accuracy(trained, text_encoder, examples)

    assert before["family"] < 0.1
    assert after["family"] > 0.8


def test_saved_reader_loads_equal(text_encoder, tmp_path):
    from hywu_cli.modeling import InstructionReader

    reader = InstructionReader()
    reader.init_from_text_encoder(text_encoder)
    reader.save_pretrained(tmp_path)
    loaded = load_network(InstructionReaderNetwork, tmp_path)
    states, mask = text_encoder.encode_layers(["add a vignette"], 4)

    for first, second in zip(reader(states, mask), loaded(states, mask)):
        assert torch.equal(first, second)


# Floors of `reading_report`, family right, by (split, spelling): a guard against a broken reader. The model card
# gives the measured values (held-out 0.929, 0.801 with one typo, 0.759 with two letters swapped).
REPORT_FAMILY_FLOORS = {
    ("eval", "as written"): 0.88,
    ("eval", "one typo"): MISSPELLED_FAMILY_FLOOR,
    ("eval", "two letters swapped"): 0.72,
    ("blind", "as written"): 0.96,
    ("blind", "one typo"): 0.9,
    ("blind", "two letters swapped"): 0.88,
    ("blind2", "as written"): 0.96,
    ("blind2", "one typo"): 0.9,
    ("blind2", "two letters swapped"): 0.88,
}


def test_reader_report_on_held_out_phrasings(shipped_reader, text_encoder):
    rows = reading_report(shipped_reader, text_encoder)
    misspelled_eval = accuracy(shipped_reader, text_encoder, misspelled(held_out_examples("eval")))

    by_key = {(row["split"], row["spelling"]): row for row in rows}
    assert shipped_reader.hparams.ensemble_size == 5
    assert set(by_key) == set(REPORT_FAMILY_FLOORS)
    for key, floor in REPORT_FAMILY_FLOORS.items():
        assert by_key[key]["family"] >= floor, key
    assert by_key[("eval", "as written")]["family_and_grade"] >= 0.8
    assert by_key[("eval", "one typo")]["family"] == misspelled_eval["family"]


def test_reader_report_command_prints_table(monkeypatch, tmp_path, capsys):
    from hywu_cli import instruction_reader

    row = {"split": "eval", "spelling": "as written", "count": 141, "family": 0.9291, "grade": 0.9433}
    rows = [{**row, "family_and_grade": 0.8794}]
    monkeypatch.setattr(instruction_reader, "reading_report", lambda reader, encoder, seed: rows)

    instruction_reader.main(["--model", str(MODEL), "--json", str(tmp_path / "reader.json")])

    assert "| eval | as written | 141 | 92.9% | 94.3% | 87.9% |" in capsys.readouterr().out
    assert json.loads((tmp_path / "reader.json").read_text()) == rows


@pytest.mark.parametrize(
    "arguments,fragment",
    [
        (["--model", "no-such-model"], "error: "),
        (["--json", "/no/such/folder/reader.json"], "the folder of --json /no/such/folder/reader.json does not exist"),
        (["--json", "{tmp}"], "is a folder; give a file name such as"),
        (["--json", "{tmp}/old.json"], "already exists; pass --overwrite to replace it"),
    ],
)
def test_reader_report_command_rejects_bad_options(capsys, tmp_path, arguments, fragment):
    from hywu_cli import instruction_reader

    (tmp_path / "old.json").write_text("[]")
    with pytest.raises(SystemExit) as exit_info:
        instruction_reader.main([argument.format(tmp=tmp_path) for argument in arguments])

    assert exit_info.value.code in (1, 2)
    assert fragment in capsys.readouterr().err


def test_reader_leaves_keyboard_mash_unread(shipped_reader, text_encoder):
    """Typo training pulls unknown letter strings toward a family; keyboard mash trains them back to none."""
    rng = random.Random("test mash")  # another seed than the training mashes
    mashes = [keyboard_mash(rng) for _ in range(200)]

    readings = shipped_reader.read(text_encoder, mashes)
    read = [(mash, reading.family) for mash, reading in zip(mashes, readings) if reading.family is not None]

    assert len(read) <= MASH_READ_MAX, read


def test_reader_reads_past_model_token_limit(shipped_reader, text_encoder):
    instruction = (
        "I am putting this picture on a slide behind a paragraph of text, and all the busy detail in the background "
        "makes the words really hard to read, so could you please make the whole picture soft and out of focus?"
    )
    _, mask = text_encoder.encode_layers([instruction], 1, max_tokens=512)
    tokens = int(mask.sum())

    (reading,) = shipped_reader.read(text_encoder, [instruction])

    assert MAX_INSTRUCTION_TOKENS < tokens <= READER_MAX_TOKENS
    assert reading.family == "blur"


def test_reader_graded_wording(shipped_reader, text_encoder):
    strong, slight = shipped_reader.read(text_encoder, ["make it much darker", "just a touch brighter"])

    assert (strong.family, strong.grade) == ("darker", "strong")
    assert (slight.family, slight.grade) == ("brighter", "slight")
    assert strong.text == canonical_phrasing("darker", "strong")


def test_reader_keeps_unsupported_request(shipped_reader, text_encoder):
    (reading,) = shipped_reader.read(text_encoder, ["replace the dog with a cat"])

    assert reading.family is None
    assert reading.text == "replace the dog with a cat"


@pytest.mark.parametrize(
    ("instruction", "families"),
    [
        ("make it brighter and add film grain", ["brighter", "film_grain"]),
        ("sepia + vignette", ["sepia", "vignette"]),
        ("turn it into a cartoon and then invert it", ["cartoon", "invert"]),
        ("black and white, then add grain", ["black_and_white", "film_grain"]),
        ("Invert the colours; sharpen it", ["invert", "sharpen"]),
        ("invert, then invert again", ["invert"]),
        ("make it black and white", ["black_and_white"]),
        ("salt and pepper grain", ["film_grain"]),
        ("photo is a little soft, can you make it more crisp", ["sharpen"]),
    ],
)
def test_reader_compound_requests(shipped_reader, text_encoder, instruction, families):
    (reading,) = shipped_reader.read(text_encoder, [instruction])
    edits = reading.edits()

    assert [edit.family for edit in edits] == families
    assert edits[0].instruction == instruction
    assert all(not edit.followed_by for edit in edits)


def test_reader_list_keeps_unsplit_parts(shipped_reader, text_encoder):
    """A comma list whose whole reads as one of its parts stays one edit, and its parts are kept for the warning."""
    (listed,) = shipped_reader.read(text_encoder, ["warmer, brighter, more contrast"])
    (joined,) = shipped_reader.read(text_encoder, ["warmer; brighter; more contrast"])
    (plain,) = shipped_reader.read(text_encoder, ["make it warmer"])

    assert listed.family == "more_contrast"
    assert not listed.followed_by
    assert [part.family for part in listed.unsplit_parts] == ["warmer", "brighter", "more_contrast"]
    assert [edit.family for edit in joined.edits()] == ["warmer", "brighter", "more_contrast"]
    assert not joined.unsplit_parts
    assert not plain.unsplit_parts


@pytest.mark.parametrize(
    "instruction", ["brighter and darker", "warmer and cooler", "brighter; darker", "-2 stops, then warmer"]
)
def test_reader_contradictory_request_unread(shipped_reader, text_encoder, instruction):
    """Conflicting parts, or a whole reading that contradicts a clear part, leave the photo unchanged."""
    (reading,) = shipped_reader.read(text_encoder, [instruction])

    assert reading.family is None
    assert reading.no_edit
    assert reading.unread_reason


@pytest.mark.parametrize(
    "instruction,reason",
    [
        ("brighter and darker", "its parts ask for Brighter and Darker, which undo each other"),
        ("warmer; cooler", "its parts ask for Cooler and Warmer, which undo each other"),
        ("asdf; qwer", "its part 'asdf' matches no edit clearly"),
    ],
)
def test_reader_unread_reason(shipped_reader, text_encoder, instruction, reason):
    (reading,) = shipped_reader.read(text_encoder, [instruction])

    assert reading.no_edit
    assert reading.unread_reason == reason
    assert reading.followed_by == ()


def test_reader_compound_rates(shipped_reader, text_encoder):
    """Bound the compound rules' errors: single-edit phrasings split (3 of 399 with the shipped reader) and two
    joined phrasings of different families read as both edits in order (156 of 200)."""
    import random

    from hywu_cli.evaluation import phrasings_for
    from hywu_cli.phrasings import CONFLICTING_PAIRS

    names = list(FAMILY_PHRASINGS)
    singles = [p.text for f in names for split in ("eval", "blind", "blind2") for p in phrasings_for(f, split)]
    blind2 = {family: [p.text for p in phrasings_for(family, "blind2")] for family in names}
    opposite = {first: second for pair in CONFLICTING_PAIRS for first, second in (pair, pair[::-1])}
    rng = random.Random(0)
    pairs = []
    while len(pairs) < 200:
        first, second = rng.sample(names, 2)
        if opposite.get(first) != second:
            joiner = rng.choice([" and ", ", ", ", then ", " plus "])
            pairs.append((rng.choice(blind2[first]) + joiner + rng.choice(blind2[second]), [first, second]))

    split = sum(bool(reading.followed_by) for reading in shipped_reader.read(text_encoder, singles))
    readings = shipped_reader.read(text_encoder, [text for text, _ in pairs])
    found = sum([edit.family for edit in reading.edits()] == families for reading, (_, families) in zip(readings, pairs))

    assert split <= 0.02 * len(singles)
    assert found >= 0.7 * len(pairs)


def test_pipeline_literal_and_no_reader(tmp_path):
    from hywu_cli import load_pipeline

    pipe = load_pipeline(MODEL, device="cpu")
    assert pipe.read_instructions(["make it much darker"])[0].family == "darker"
    assert pipe.read_instructions([]) == []
    darker, empty = pipe.read_instructions(["make it much darker", "  "])
    assert darker.family == "darker"
    assert empty.text == ""
    pipe.literal = True
    assert pipe.read_instructions(["make it  much darker"])[0].text == "make it much darker"

    copy = tmp_path / "no-reader"
    shutil.copytree(MODEL, copy, ignore=shutil.ignore_patterns("instruction_reader"))
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["components"]["instruction_reader"]
    manifest["files"] = [entry for entry in manifest["files"] if not entry["path"].startswith("instruction_reader/")]
    (copy / "manifest.json").write_text(json.dumps(manifest))

    without = load_pipeline(copy, device="cpu")
    assert without.reader is None
    assert without.read_instructions(["make it much darker"])[0].text == "make it much darker"


def test_pipeline_reads_each_instruction_once(monkeypatch):
    from hywu_cli import load_pipeline

    pipe = load_pipeline(MODEL, device="cpu")
    calls = []
    read = pipe.reader.read
    monkeypatch.setattr(pipe.reader, "read", lambda encoder, texts: calls.append(list(texts)) or read(encoder, texts))

    first = pipe.read_instructions(["add film grain", "make it much darker", "add film grain"])
    second = pipe.read_instructions(["make it  much darker", "sepia"])

    assert calls == [["add film grain", "make it much darker"], ["sepia"]]
    assert first[0] == first[2]
    assert second[0] == first[1]
    assert [reading.family for reading in second] == ["darker", "sepia"]


def test_examples_include_writers():
    from hywu_cli.phrasings_writers import reader_phrasings

    plain = training_examples(0, (), writers=())
    full = training_examples(0, ())

    assert len(full.texts) - len(plain.texts) == sum(len(reader_phrasings(f)) for f in FAMILY_PHRASINGS)
    assert set(plain.texts) < set(full.texts)
