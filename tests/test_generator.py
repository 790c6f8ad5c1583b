import pytest
import torch

from hywu_cli.generator import ParameterGeneratorNetwork
from hywu_cli.modeling import ParameterGenerator
from hywu_cli.network_io import load_network


TARGETS = [["conv_in", 27, 8], ["conv_down", 72, 6], ["head.0", 6, 11], ["head.2", 11, 5]]


def make_generator(**overrides):
    torch.manual_seed(0)
    config = {"targets": TARGETS, "rank": 3, "token_dim": 8, "cond_dim": 16, "width": 32, "depth": 2, "num_heads": 4}
    config.update(overrides)
    return ParameterGenerator(**config)


def test_output_shapes_per_target():
    generator = make_generator()
    cond = torch.randn(5, 7, 16)

    lora = generator(cond)

    for name, in_features, out_features in TARGETS:
        assert lora.lora_A[name].shape == (5, 3, in_features)
        assert lora.lora_B[name].shape == (5, out_features, 3)
    assert lora.scaling == generator.config.lora_alpha / 3


def test_untrained_generator_is_exact_no_op():
    generator = make_generator()

    lora = generator(torch.randn(2, 4, 16))

    for name in lora.lora_B:
        assert torch.count_nonzero(lora.lora_B[name]) == 0
        assert lora.lora_A[name].abs().sum() > 0


def test_outputs_depend_on_condition_per_sample():
    generator = make_generator()
    torch.nn.init.normal_(generator.head_b.weight, std=0.1)
    cond = torch.randn(2, 4, 16)

    lora = generator(cond)
    lora_alone = generator(cond[1:])

    assert not torch.allclose(lora.lora_B["head.0"][0], lora.lora_B["head.0"][1])
    torch.testing.assert_close(lora.lora_B["head.0"][1:], lora_alone.lora_B["head.0"], atol=1e-5, rtol=0)


def test_condition_mask_ignores_padded_tokens():
    generator = make_generator()
    torch.nn.init.normal_(generator.head_b.weight, std=0.1)
    cond = torch.randn(1, 6, 16)
    mask = torch.tensor([[True, True, True, False, False, False]])
    altered = cond.clone()
    altered[:, 3:] = 100.0

    first = generator(cond, mask)
    second = generator(altered, mask)

    torch.testing.assert_close(first.lora_B["head.2"], second.lora_B["head.2"], atol=1e-6, rtol=0)


def test_save_load_round_trip_identical(tmp_path):
    generator = make_generator()
    torch.nn.init.normal_(generator.head_b.weight, std=0.1)
    cond = torch.randn(3, 5, 16)
    generator.save_pretrained(tmp_path / "generator")

    loaded = ParameterGenerator.from_pretrained(tmp_path / "generator")

    assert (tmp_path / "generator" / "config.json").is_file()
    assert (tmp_path / "generator" / "diffusion_pytorch_model.safetensors").is_file()
    expected, actual = generator(cond), loaded(cond)
    for name in expected.lora_A:
        assert torch.equal(expected.lora_A[name], actual.lora_A[name])
        assert torch.equal(expected.lora_B[name], actual.lora_B[name])


def test_gradients_reach_all_generator_parameters():
    generator = make_generator()
    cond = torch.randn(2, 4, 16)

    lora = generator(cond)
    loss = sum(b.sum() for b in lora.lora_B.values()) + sum(a.square().sum() for a in lora.lora_A.values())
    loss.backward()

    assert generator.head_b.weight.grad.abs().sum() > 0
    assert generator.cond_proj.weight.grad is not None


def test_plain_loader_matches_diffusers_loader(tmp_path):
    generator = make_generator()
    torch.nn.init.normal_(generator.head_b.weight, std=0.1)
    generator.save_pretrained(tmp_path / "generator")
    cond = torch.randn(2, 5, 16)

    plain = load_network(ParameterGeneratorNetwork, tmp_path / "generator")

    assert type(plain) is ParameterGeneratorNetwork
    expected, actual = generator(cond), plain(cond)
    for name in expected.lora_B:
        assert torch.equal(expected.lora_B[name], actual.lora_B[name])


def test_loaded_network_buffers_and_threads(tmp_path):
    import threading

    generator = make_generator()
    generator.save_pretrained(tmp_path / "generator")
    largest = []

    def build_layers() -> None:
        for _ in range(100):
            largest.append(torch.nn.Linear(64, 64).weight.abs().max().item())

    other = threading.Thread(target=build_layers)
    other.start()
    loads = [load_network(ParameterGeneratorNetwork, tmp_path / "generator") for _ in range(10)]
    other.join()

    # Non-persistent buffers are computed, not loaded, so they must not depend on the skipped initialisers.
    expected_buffers = dict(generator.named_buffers())
    for name, buffer in loads[-1].named_buffers():
        assert torch.equal(buffer, expected_buffers[name]), name
    # Layers built on another thread meanwhile get PyTorch's own initialisation: Kaiming bound 1/sqrt(64).
    assert 0 < max(largest) <= 0.125
    assert 0 < torch.nn.Linear(64, 64).weight.std() < 0.1


def test_layer_gain_scales_its_lora_b():
    torch.manual_seed(3)
    plain = make_generator()
    for parameter in plain.parameters():
        parameter.data.normal_(0, 0.1)
    name = plain.layout.targets[1].name
    gained = make_generator(layer_gains={name: 8.0})
    gained.load_state_dict(plain.state_dict())
    cond = torch.randn(2, 5, 16)

    with torch.no_grad():
        expected, actual = plain(cond), gained(cond)

    for target in plain.layout.targets:
        factor = 8.0 if target.name == name else 1.0
        torch.testing.assert_close(actual.lora_B[target.name], factor * expected.lora_B[target.name])
        torch.testing.assert_close(actual.lora_A[target.name], expected.lora_A[target.name])


def test_layer_gain_for_unknown_layer_rejected():
    with pytest.raises(ValueError, match="not targets: nowhere"):
        make_generator(layer_gains={"nowhere": 2.0})


def test_position_bias_starts_as_no_op(tmp_path):
    plain, biased = make_generator(), make_generator(position_bias=True)
    biased.load_state_dict(plain.state_dict(), strict=False)
    cond = torch.randn(2, 4, 16)

    before = biased(cond)
    for name in before.lora_B:
        assert torch.equal(before.lora_A[name], plain(cond).lora_A[name])
        assert torch.count_nonzero(before.lora_B[name]) == 0

    with torch.no_grad():
        biased.bias_tokens.normal_()
    after = biased(cond)
    # The head of lora_B is still zero, so lora_B is the bias alone: the same for every sample, and non-zero.
    for name in after.lora_B:
        assert torch.count_nonzero(after.lora_B[name]) > 0
        assert torch.equal(after.lora_B[name][0], after.lora_B[name][1])

    biased.save_pretrained(tmp_path / "generator")
    loaded = ParameterGenerator.from_pretrained(tmp_path / "generator")
    assert torch.equal(loaded(cond).lora_B["head.0"], after.lora_B["head.0"])
