import torch

from hywu_cli.condition import ConditionEncoderNetwork
from hywu_cli.text_encoder import EncodedInstructions


FAMILIES = ["brighter", "cartoon", "invert"]
GRADES = ["slight", "normal", "strong"]


def make_instructions(batch: int = 3, tokens: int = 5) -> EncodedInstructions:
    torch.manual_seed(1)
    return EncodedInstructions(
        torch.randn(batch, tokens, 384), torch.ones(batch, tokens, dtype=torch.bool), torch.randn(batch, 384)
    )


def make_encoder(**reading) -> ConditionEncoderNetwork:
    torch.manual_seed(0)
    return ConditionEncoderNetwork(cond_dim=16, **reading).eval()


def test_untrained_reading_embedding_leaves_condition_unchanged():
    plain = make_encoder()
    reading = make_encoder(reading_families=FAMILIES, reading_grades=GRADES)
    missing, unexpected = reading.load_state_dict(plain.state_dict(), strict=False)
    images = torch.rand(3, 3, 40, 56)
    instructions = make_instructions()
    ids = reading.reading_ids_for([("cartoon", "strong"), (None, None), ("invert", "slight")])
    read = instructions.with_reading(ids)

    expected, expected_mask = plain(images, instructions)
    actual, actual_mask = reading(images, read)

    assert sorted(missing) == ["family_embed.weight", "grade_embed.weight"]
    assert not unexpected
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)
    assert torch.equal(actual_mask, expected_mask)


def test_reading_changes_own_summary_token_only():
    encoder = make_encoder(reading_families=FAMILIES, reading_grades=GRADES)
    torch.nn.init.normal_(encoder.family_embed.weight)
    torch.nn.init.normal_(encoder.grade_embed.weight)
    images = torch.rand(3, 3, 32, 32)
    instructions = make_instructions()
    unread = instructions.with_reading(encoder.unread_ids(3))
    read = instructions.with_reading(encoder.reading_ids_for([(None, None), ("cartoon", "normal"), (None, None)]))

    base, _ = encoder(images, unread)
    changed, _ = encoder(images, read)
    without_ids, _ = encoder(images, instructions)

    difference = (changed - base).abs().amax(dim=-1)  # (batch, positions)
    assert difference[1, 0] > 0
    assert difference[[0, 2]].max() == 0
    assert difference[:, 1:].max() == 0
    torch.testing.assert_close(without_ids, base, atol=0, rtol=0)


def test_reading_ids_unknown_names_are_not_read():
    encoder = make_encoder(reading_families=FAMILIES, reading_grades=GRADES)

    ids = encoder.reading_ids_for([("invert", "slight"), ("sepia", "normal"), (None, None), ("brighter", "huge")])

    assert ids.tolist() == [[2, 0], [3, 3], [3, 3], [3, 3]]
    assert encoder.unread_ids(2).tolist() == [[3, 3], [3, 3]]
    assert not make_encoder().reads_edits


def test_encoded_instructions_keep_reading_when_indexed():
    encoder = make_encoder(reading_families=FAMILIES, reading_grades=GRADES)
    instructions = make_instructions().with_reading(
        encoder.reading_ids_for([("invert", "slight"), ("cartoon", "strong"), (None, None)])
    )

    picked = instructions.index([2, 1]).to("cpu")

    assert picked.reading_ids.tolist() == [[3, 3], [1, 2]]
    assert make_instructions().index([0]).reading_ids is None
