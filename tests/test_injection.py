import copy

import pytest
import torch
from torch import nn

from hywu_cli.errors import NonFiniteLoraError
from hywu_cli.generator import GeneratedLora
from hywu_cli.injection import (
    apply_generated_lora,
    disable_generated_lora,
    generated_lora_layers,
    inject_generated_lora,
    merge_generated_lora,
    save_peft_adapter,
    unwrap_generated_lora,
)


class TinyNet(nn.Module):
    def __init__(self, dilation=2):
        super().__init__()
        self.conv_in = nn.Conv2d(3, 8, 3, padding=1)
        self.conv_down = nn.Conv2d(8, 6, 3, stride=2, padding=dilation, dilation=dilation)
        self.head = nn.Sequential(nn.Linear(6, 11), nn.SiLU(), nn.Linear(11, 5))

    def forward(self, x):
        h = torch.relu(self.conv_in(x))
        h = self.conv_down(h)  # (batch, 6, h, w)
        return self.head(h.permute(0, 2, 3, 1))


PATTERNS = [r"conv_.*", r"head\.\d"]


def make_wrapped(seed=0, dilation=2):
    torch.manual_seed(seed)
    base = TinyNet(dilation)
    wrapped = copy.deepcopy(base)
    targets = inject_generated_lora(wrapped, PATTERNS)
    return base, wrapped, targets


def random_lora(targets, batch, rank=3, scale=0.3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    lora_A = {t.name: torch.randn(batch, rank, t.in_features, generator=generator) * scale for t in targets}
    lora_B = {t.name: torch.randn(batch, t.out_features, rank, generator=generator) * scale for t in targets}
    return GeneratedLora(lora_A, lora_B, scaling=0.75)


def test_inject_finds_linear_and_conv_targets():
    _, wrapped, targets = make_wrapped()

    assert [t.name for t in targets] == ["conv_in", "conv_down", "head.0", "head.2"]
    assert targets[0].in_features == 3 * 3 * 3
    assert targets[1].out_features == 6
    assert set(generated_lora_layers(wrapped)) == {t.name for t in targets}


def test_inject_rejects_unmatched_patterns():
    with pytest.raises(ValueError, match="candidates are"):
        inject_generated_lora(TinyNet(), ["nothing_here"])


def test_zero_factors_bit_identical_to_base():
    base, wrapped, targets = make_wrapped()
    x = torch.randn(4, 3, 9, 13)
    lora = random_lora(targets, batch=4)
    lora = GeneratedLora(lora.lora_A, {k: torch.zeros_like(v) for k, v in lora.lora_B.items()}, lora.scaling)

    with apply_generated_lora(wrapped, lora):
        out = wrapped(x)

    assert torch.equal(out, base(x))


def test_per_sample_batch_matches_merged_weights():
    base, wrapped, targets = make_wrapped()
    x = torch.randn(4, 3, 9, 13)
    lora = random_lora(targets, batch=4)

    with apply_generated_lora(wrapped, lora):
        batched = wrapped(x)

    for index in range(4):
        merged = merge_generated_lora(wrapped, lora, index)
        alone = merged(x[index : index + 1])
        torch.testing.assert_close(batched[index : index + 1], alone, atol=1e-5, rtol=0)
        assert not generated_lora_layers(merged)
    # The update changes the output, so the comparison above is not trivially equal to the base.
    assert (batched - base(x)).abs().max() > 1e-2


def test_base_weights_never_modified():
    base, wrapped, targets = make_wrapped()
    before = {k: v.clone() for k, v in wrapped.state_dict().items()}
    lora = random_lora(targets, batch=2)

    merge_generated_lora(wrapped, lora, 1)
    with apply_generated_lora(wrapped, lora):
        wrapped(torch.randn(2, 3, 8, 8))

    for key, value in wrapped.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_gradients_reach_generator_not_base():
    _, wrapped, targets = make_wrapped()
    for parameter in wrapped.parameters():
        parameter.requires_grad_(False)
    lora = random_lora(targets, batch=2)
    for tensor in [*lora.lora_A.values(), *lora.lora_B.values()]:
        tensor.requires_grad_(True)

    with apply_generated_lora(wrapped, lora):
        wrapped(torch.randn(2, 3, 8, 8)).square().mean().backward()

    for name in lora.lora_A:
        assert lora.lora_A[name].grad is not None, name
        assert lora.lora_A[name].grad.abs().sum() > 0, name
        assert lora.lora_B[name].grad is not None, name
        assert lora.lora_B[name].grad.abs().sum() > 0, name
    for parameter in wrapped.parameters():
        assert parameter.grad is None


def test_exception_inside_context_clears_update():
    base, wrapped, targets = make_wrapped()
    x = torch.randn(2, 3, 8, 8)

    with pytest.raises(RuntimeError, match="boom"):
        with apply_generated_lora(wrapped, random_lora(targets, batch=2)):
            raise RuntimeError("boom")

    assert all(layer.lora_A is None for layer in generated_lora_layers(wrapped).values())
    assert torch.equal(wrapped(x), base(x))


def test_disable_path_runs_bare_base():
    base, wrapped, targets = make_wrapped()
    x = torch.randn(2, 3, 8, 8)

    with apply_generated_lora(wrapped, random_lora(targets, batch=2)):
        with disable_generated_lora(wrapped):
            disabled = wrapped(x)
        enabled = wrapped(x)

    assert torch.equal(disabled, base(x))
    assert not torch.equal(enabled, base(x))


def test_batch_of_one_broadcasts():
    _, wrapped, targets = make_wrapped()
    x = torch.randn(3, 3, 8, 8)
    lora = random_lora(targets, batch=1)

    with apply_generated_lora(wrapped, lora):
        out = wrapped(x)

    merged = merge_generated_lora(wrapped, lora, 0)
    torch.testing.assert_close(out, merged(x), atol=1e-5, rtol=0)


def test_non_finite_factor_names_layer():
    _, wrapped, targets = make_wrapped()
    lora = random_lora(targets, batch=1)
    lora.lora_B["head.2"][0, 0, 0] = float("nan")

    with pytest.raises(NonFiniteLoraError, match="head.2"):
        with apply_generated_lora(wrapped, lora):
            pass
    assert all(layer.lora_A is None for layer in generated_lora_layers(wrapped).values())


def test_mismatched_lora_names_rejected():
    _, wrapped, targets = make_wrapped()
    lora = random_lora(targets[:2], batch=1)

    with pytest.raises(ValueError, match="missing"):
        with apply_generated_lora(wrapped, lora):
            pass


def test_peft_export_reproduces_output(tmp_path):
    peft = pytest.importorskip("peft")
    base, wrapped, targets = make_wrapped(dilation=1)
    x = torch.randn(1, 3, 10, 7)
    lora = random_lora(targets, batch=3)

    with apply_generated_lora(wrapped, lora):
        injected = wrapped(x.expand(3, -1, -1, -1))[2:3]
    save_peft_adapter(wrapped, lora, tmp_path / "adapter", index=2)
    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "adapter")
    peft_model.eval()

    with torch.no_grad():
        reloaded = peft_model(x)
    torch.testing.assert_close(reloaded, injected, atol=1e-5, rtol=0)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_unwrap_restores_plain_modules():
    base, wrapped, _ = make_wrapped()
    x = torch.randn(1, 3, 8, 8)

    unwrap_generated_lora(wrapped)

    assert not generated_lora_layers(wrapped)
    assert isinstance(wrapped.conv_in, nn.Conv2d)
    assert torch.equal(wrapped(x), base(x))


def test_peft_export_rejects_dilated_conv(tmp_path):
    _, wrapped, targets = make_wrapped(dilation=2)

    with pytest.raises(ValueError, match="conv_down"):
        save_peft_adapter(wrapped, random_lora(targets, batch=1), tmp_path / "adapter")
