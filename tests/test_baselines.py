"""The static baselines of `hywu eval`: one shared LoRA update, saved and reloaded, and the claim checks."""

from __future__ import annotations

import copy

import torch
from torch import nn

from hywu_cli.baselines import StaticLora, load_static_lora
from hywu_cli.comparison import markdown, summarize
from hywu_cli.edits import EDIT_FAMILIES, PRETRAINING_FAMILIES
from hywu_cli.evaluation import EvaluationResult, FamilyScore
from hywu_cli.injection import apply_generated_lora, inject_generated_lora, merge_generated_lora


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def trained_static_lora(net):
    targets = inject_generated_lora(net, [r"conv", r"head"])
    lora = StaticLora(targets, rank=2, lora_alpha=4.0)
    with torch.no_grad():
        for factor in lora.lora_B:
            factor.normal_(0, 0.1)
    return lora


def test_fresh_static_lora_is_a_no_op():
    torch.manual_seed(0)
    net, x = TinyNet(), torch.randn(3, 3, 8, 8)
    expected = net(x)
    lora = StaticLora(inject_generated_lora(net, [r"conv", r"head"]), rank=2, lora_alpha=2.0)

    with torch.no_grad(), apply_generated_lora(net, lora(3)):
        actual = net(x)

    assert torch.equal(actual, expected)


def test_static_lora_equals_merged_weights():
    torch.manual_seed(1)
    net, x = TinyNet(), torch.randn(4, 3, 8, 8)
    lora = trained_static_lora(net)

    with torch.no_grad(), apply_generated_lora(net, lora(4)):
        injected = net(x)
    merged = merge_generated_lora(copy.deepcopy(net), lora(1))
    with torch.no_grad():
        reference = merged(x)

    torch.testing.assert_close(injected, reference, atol=1e-5, rtol=0)


def test_saved_static_lora_reloads_exactly(tmp_path):
    torch.manual_seed(2)
    net, x = TinyNet(), torch.randn(2, 3, 8, 8)
    lora = trained_static_lora(net)
    lora.save(tmp_path / "static_lora.safetensors")

    reloaded = load_static_lora(tmp_path / "static_lora.safetensors")

    assert reloaded.scaling == lora.scaling == 2.0
    with torch.no_grad(), apply_generated_lora(net, lora(2)):
        expected = net(x)
    expanded = type(reloaded)(
        {name: a.expand(2, -1, -1) for name, a in reloaded.lora_A.items()},
        {name: b.expand(2, -1, -1) for name, b in reloaded.lora_B.items()},
        reloaded.scaling,
    )
    with torch.no_grad(), apply_generated_lora(net, expanded):
        actual = net(x)
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def test_static_lora_continues_from_saved_file(tmp_path):
    """`load` undoes the gains that `save` applied, so a continued LoRA starts exactly where the saved one ended."""
    torch.manual_seed(3)
    targets = inject_generated_lora(TinyNet(), [r"conv", r"head"])
    lora = StaticLora(targets, rank=2, lora_alpha=4.0, layer_gains={"head": 3.0})
    with torch.no_grad():
        for factor in lora.lora_B:
            factor.normal_(0, 0.1)
    lora.save(tmp_path / "static_lora.safetensors")

    continued = StaticLora(targets, rank=2, lora_alpha=4.0, layer_gains={"head": 3.0})
    continued.load(tmp_path / "static_lora.safetensors")

    for name in lora.names:
        torch.testing.assert_close(continued(1).lora_A[name], lora(1).lora_A[name], atol=0, rtol=0)
        torch.testing.assert_close(continued(1).lora_B[name], lora(1).lora_B[name], atol=1e-7, rtol=1e-6)


def result(scores: dict[str, float]) -> EvaluationResult:
    return EvaluationResult({name: FamilyScore(name, value, 0.9, 4) for name, value in scores.items()})


def test_summary_checks_each_claim():
    families = list(EDIT_FAMILIES)
    base = {name: 20.0 for name in families}
    static = {name: 25.0 for name in families}
    hywu = {name: 27.0 for name in families}
    hywu["brighter"] = 19.0  # drops below the base on a pretraining family and loses the brighter/darker pair
    hywu["night"] = 18.0  # loses to the base on a family the base never saw

    summary = summarize({"base": result(base), "sft": result(static), "static_lora": result(static), "hywu": result(hywu)})

    assert summary["pretraining_families_forgotten"] == ["brighter"]
    assert "night" not in summary["unseen_families_where_hywu_beats_base"]
    assert len(summary["unseen_families_where_hywu_beats_base"]) == len(families) - len(PRETRAINING_FAMILIES) - 1
    assert summary["hywu_beats_static_on_mean"] == {"sft": True, "static_lora": True}
    assert summary["hywu_beats_static_on_every_pair"] == {"sft": False, "static_lora": False}
    assert summary["conflicting_pairs"]["brighter/darker"]["hywu"] == 23.0


def test_markdown_lists_families_and_pairs():
    families = list(EDIT_FAMILIES)
    results = {"base": result({name: 20.0 for name in families}), "hywu": result({name: 22.0 for name in families})}

    text = markdown(results, summarize(results))

    for name in families:
        assert f"| {name} |" in text
    assert "| brighter/darker | 20.00 | 22.00 |" in text
