from pathlib import Path

import pytest
import torch

from hywu_cli.errors import HywuWarning
from hywu_cli.text_encoder import MAX_INSTRUCTION_TOKENS, TextEncoder


FOLDER = Path(__file__).resolve().parents[1] / "weights" / "hywu-lite" / "text_encoder"

pytestmark = pytest.mark.skipif(not (FOLDER / "model.safetensors").is_file(), reason="packaged text encoder missing")

INSTRUCTIONS = ["make it snowy", "Slightly warmer, please!", "replace the dog with a cat and add a hat on its head"]


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(FOLDER)


def test_matches_transformers_bert(encoder):
    transformers = pytest.importorskip("transformers")
    reference = transformers.BertModel.from_pretrained(FOLDER, local_files_only=True, torch_dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(FOLDER, local_files_only=True)
    batch = tokenizer(INSTRUCTIONS, padding=True, return_tensors="pt")

    with torch.no_grad():
        expected = reference(**batch).last_hidden_state
    ours = encoder.encode(INSTRUCTIONS)

    assert torch.equal(ours.token_mask, batch["attention_mask"].bool())
    mask = ours.token_mask.unsqueeze(-1)
    torch.testing.assert_close(ours.token_states * mask, expected * mask, atol=1e-4, rtol=1e-4)


def test_sentence_embeddings_are_unit_and_meaningful(encoder):
    encoded = encoder.encode(["make it brighter", "increase the brightness", "replace the dog with a cat"])
    embeddings = encoded.sentence_embeddings

    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2] + 0.2


def test_long_instruction_truncated_with_warning(encoder):
    long_text = "make it warmer " * 30

    with pytest.warns(HywuWarning, match="word pieces"):
        encoded = encoder.encode([long_text])

    assert encoded.token_states.shape[1] == MAX_INSTRUCTION_TOKENS
