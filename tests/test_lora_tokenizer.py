import math

import pytest
import torch

from hywu_cli.lora_tokenizer import LoraTarget, LoraTokenLayout


ODD_TARGETS = [LoraTarget("a", 7, 130), LoraTarget("b", 64, 1), LoraTarget("c", 129, 65), LoraTarget("d", 1, 3)]


def random_factors(targets, rank, batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch, rank, t.in_features, generator=generator),
            torch.randn(batch, t.out_features, rank, generator=generator),
        )
        for t in targets
    ]


@pytest.mark.parametrize("rank,token_dim", [(1, 1), (3, 16), (4, 64), (2, 200)])
def test_round_trip_exact_for_odd_sizes(rank, token_dim):
    layout = LoraTokenLayout(ODD_TARGETS, rank=rank, token_dim=token_dim)
    factors = random_factors(ODD_TARGETS, rank)

    tokens = layout.tokenize(factors)
    restored = layout.detokenize(tokens)

    assert tokens.shape == (3, 4, layout.tokens_per_layer, rank, token_dim)
    for (a, b), (a2, b2) in zip(factors, restored):
        assert torch.equal(a, a2)
        assert torch.equal(b, b2)


def test_layout_counts_tokens_per_factor():
    layout = LoraTokenLayout(ODD_TARGETS, rank=2, token_dim=16)

    assert layout.a_token_counts == [1, 4, 9, 1]
    assert layout.b_token_counts == [9, 1, 5, 1]
    assert layout.tokens_per_layer == 14
    assert layout.num_valid_tokens == sum(layout.a_token_counts) + sum(layout.b_token_counts)
    assert layout.valid_mask().sum().item() == layout.num_valid_tokens
    assert layout.factor_mask().sum().item() == sum(layout.b_token_counts)


def test_padding_never_reaches_weight():
    layout = LoraTokenLayout(ODD_TARGETS, rank=3, token_dim=16)
    factors = random_factors(ODD_TARGETS, 3)

    tokens = layout.tokenize(factors, padding_value=math.nan)
    restored = layout.detokenize(tokens)

    # NaN marks every padded cell and column, and none of it comes back.
    expected_padding = tokens.numel() - 3 * sum(3 * (t.in_features + t.out_features) for t in ODD_TARGETS)
    assert torch.isnan(tokens).sum().item() == expected_padding
    for lora_A, lora_B in restored:
        assert torch.isfinite(lora_A).all()
        assert torch.isfinite(lora_B).all()


def test_token_is_rank_anchored_slice():
    layout = LoraTokenLayout([LoraTarget("x", 40, 20)], rank=2, token_dim=16)
    lora_A = torch.arange(80.0).view(1, 2, 40)
    lora_B = torch.arange(40.0).view(1, 20, 2)

    tokens = layout.tokenize([(lora_A, lora_B)])

    # Second A token: both rank rows, columns 16..31.
    assert torch.equal(tokens[0, 0, 1], lora_A[0, :, 16:32])
    # First B token: lora_B transposed to (rank, out), columns 0..15.
    assert torch.equal(tokens[0, 0, 3], lora_B[0].T[:, :16])


def test_layout_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one target"):
        LoraTokenLayout([], rank=2, token_dim=4)
    with pytest.raises(ValueError, match="unique"):
        LoraTokenLayout([LoraTarget("x", 2, 2), LoraTarget("x", 3, 3)], rank=2, token_dim=4)
    with pytest.raises(ValueError, match="positive"):
        LoraTarget("x", 0, 3)
    layout = LoraTokenLayout([LoraTarget("x", 5, 6)], rank=2, token_dim=4)
    with pytest.raises(ValueError, match="expected"):
        layout.tokenize([(torch.zeros(1, 2, 4), torch.zeros(1, 6, 2))])
