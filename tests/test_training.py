import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


ROOT = Path(__file__).resolve().parents[1]
TEXT_ENCODER = ROOT / "weights" / "hywu-lite" / "text_encoder"

pytestmark = pytest.mark.skipif(
    not (TEXT_ENCODER / "model.safetensors").is_file(), reason="packaged text encoder missing from weights/"
)


def make_photos(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = (rng.random((80, 100, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index}.png")


def training_command(tmp_path: Path, generator_steps: int) -> list[str]:
    return [
        "--photos", str(tmp_path / "missing"),
        "--extra-photos", str(tmp_path / "photos"),
        "--out", str(tmp_path / "model"),
        "--work", str(tmp_path / "work"),
        "--base-steps", "2",
        "--generator-steps", str(generator_steps),
        "--batch-size", "2",
        "--base-batch-size", "2",
        "--crop-size", "64",
        "--checkpoint-every", "1",
        "--composed-phrasings", "3",
        "--reader-steps", "2",
        "--reader-phrasings", "3",
    ]  # fmt: skip


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def workspace(tmp_path):
    make_photos(tmp_path / "photos")
    (tmp_path / "model").mkdir()
    shutil.copytree(TEXT_ENCODER, tmp_path / "model" / "text_encoder")
    return tmp_path


def test_two_cpu_processes_train_every_stage(workspace):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]

    result = run([*launch, "-m", "hywu_cli.training", *training_command(workspace, 2)])

    assert "generator step 2/2" in result.stderr
    assert (workspace / "work" / "base" / "final" / "config.json").is_file()
    assert (workspace / "work" / "generator" / "final" / "generator" / "config.json").is_file()
    assert (workspace / "work" / "sft" / "final" / "config.json").is_file()
    assert (workspace / "work" / "static_lora" / "final" / "static_lora.safetensors").is_file()
    assert (workspace / "work" / "reader" / "final" / "report.json").is_file()
    assert json.loads((workspace / "work" / "generator" / "progress.json").read_text())["step"] == 2


# The resume tests leave out the reader stage: it encodes every reader sentence (about a minute on one thread), and
# `test_two_cpu_processes_train_every_stage` already runs it.
RESUMED_STAGES = ("--stages", "base,generator")


def test_training_resumes_from_checkpoint(workspace):
    run([sys.executable, "-m", "hywu_cli.training", *training_command(workspace, 2), *RESUMED_STAGES])
    shutil.rmtree(workspace / "work" / "generator" / "final")

    result = run([sys.executable, "-m", "hywu_cli.training", *training_command(workspace, 3), *RESUMED_STAGES])

    assert "base editor already trained" in result.stderr
    assert "at step 2" in result.stderr
    assert "generator step 3/3" in result.stderr
    assert "generator step 1/3" not in result.stderr


def test_resume_with_other_settings_fails(workspace):
    run([sys.executable, "-m", "hywu_cli.training", *training_command(workspace, 2), *RESUMED_STAGES])
    shutil.rmtree(workspace / "work" / "generator" / "final")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}

    command = [sys.executable, "-m", "hywu_cli.training", *training_command(workspace, 3), *RESUMED_STAGES]
    command.append("--position-bias")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)

    assert result.returncode != 0
    assert "cannot resume from" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_photo_folder_is_named(tmp_path):
    from hywu_cli.training import collect_photo_paths, parse_args

    config = parse_args(["--photos", str(tmp_path / "absent"), "--work", str(tmp_path / "work")])

    with pytest.raises(SystemExit, match="absent not found"):
        collect_photo_paths(config)


def test_canonical_share_draws_canonical_phrasings():
    import random

    from hywu_cli.dataset import PhrasingTable
    from hywu_cli.instruction_reader import canonical_phrasing

    table = PhrasingTable(["invert", "brighter"], composed_per_family=20)
    canonical = {canonical_phrasing("invert", grade) for grade in ("slight", "normal", "strong")}
    rng = random.Random(0)

    always = {table.texts[table.sample_row("invert", rng, 0.5, canonical_share=1.0)] for _ in range(60)}
    never = [table.texts[table.sample_row("invert", rng, 0.5, canonical_share=0.0)] for _ in range(200)]
    half = [table.texts[table.sample_row("invert", rng, 0.5, canonical_share=0.5)] for _ in range(400)]

    assert always == canonical
    assert sum(text in canonical for text in never) < 40
    assert 0.45 < sum(text in canonical for text in half) / len(half) < 0.7


def test_packaging_takes_missing_components_from_earlier_run(tmp_path):
    from hywu_cli.packaging import component_sources

    first, continued = tmp_path / "first", tmp_path / "continued"
    for folder in (first / "base" / "final", first / "reader" / "final", continued / "generator" / "final" / "generator"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")

    sources = component_sources(continued, init_from=first)

    assert sources["editor"] == first / "base" / "final"
    assert sources["instruction_reader"] == first / "reader" / "final"
    assert sources["generator"] == continued / "generator" / "final" / "generator"
    assert component_sources(continued)["editor"] == continued / "base" / "final"


def test_family_weights_repeat_families():
    from hywu_cli.edits import EDIT_FAMILIES
    from hywu_cli.training import all_families_spec, parse_args

    config = parse_args(["--family-weight", "invert=5", "--family-weight", "snowy=0"])
    families = all_families_spec(config, "generator", 1e-3).families

    assert families.count("invert") == 5
    assert "snowy" not in families
    assert families.count("cartoon") == 2  # a default texture weight that was not overridden
    assert families.count("brighter") == 1
    # invert adds 4, four texture families add 1 each, snowy drops its 1.
    assert len(families) == len(EDIT_FAMILIES) + 4 + 4 - 1


@pytest.mark.parametrize("value", ["sunset=2", "invert=-1", "invert=two", "invert"])
def test_bad_family_weight_is_rejected_with_its_value(value, capsys):
    from hywu_cli.training import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--family-weight", value])

    assert exit_info.value.code == 2
    assert repr(value) in capsys.readouterr().err


def test_family_weights_cannot_all_be_zero(capsys):
    from hywu_cli.edits import EDIT_FAMILIES
    from hywu_cli.training import parse_args

    zeros = [argument for name in EDIT_FAMILIES for argument in ("--family-weight", f"{name}=0")]

    with pytest.raises(SystemExit):
        parse_args(zeros)

    assert "weight 0" in capsys.readouterr().err


def test_only_canonical_rows_carry_a_reading():
    from hywu_cli.dataset import PhrasingTable
    from hywu_cli.edits import EDIT_FAMILIES
    from hywu_cli.instruction_reader import GRADES, canonical_phrasing
    from hywu_cli.training import reading_ids

    table = PhrasingTable(list(EDIT_FAMILIES), composed_per_family=5)

    ids = reading_ids(table)

    unread = [len(EDIT_FAMILIES), len(GRADES)]
    read_rows = [row for row in range(len(table.texts)) if ids[row].tolist() != unread]
    assert len(read_rows) == len(EDIT_FAMILIES) * len(GRADES)
    for row in read_rows:
        family, grade = list(EDIT_FAMILIES)[int(ids[row, 0])], GRADES[int(ids[row, 1])]
        assert table.texts[row] == canonical_phrasing(family, grade)
        assert table.families[row] == family


def test_continued_run_copies_untrained_stages(tmp_path):
    from hywu_cli.training import inherit_finished_stages, parse_args

    first = tmp_path / "first"
    for stage in ("base", "reader", "generator"):
        (first / stage / "final").mkdir(parents=True)
        (first / stage / "final" / "config.json").write_text(f'{{"stage": "{stage}"}}')
    config = parse_args(["--work", str(tmp_path / "next"), "--init-from", str(first), "--stages", "generator,reader"])

    inherit_finished_stages(config)

    assert (tmp_path / "next" / "base" / "final" / "config.json").read_text() == '{"stage": "base"}'
    assert not (tmp_path / "next" / "reader").exists()  # this run trains its own reader
    assert not (tmp_path / "next" / "generator").exists()


def test_plain_loss_matches_formula():
    import torch
    import torch.nn.functional as F

    from hywu_cli.training import editing_loss

    target = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    output = target + 0.2 * torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))

    clipped = output.clamp(0, 1)
    overshoot = F.relu(output - 1) + F.relu(-output)
    expected = F.l1_loss(clipped, target) + F.mse_loss(clipped, target) + overshoot.square().mean()
    assert editing_loss(output, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_balanced_loss_uses_relative_error():
    import torch

    from hywu_cli.training import BALANCE_FLOOR, editing_loss

    target = torch.full((2, 3, 8, 8), 0.5)

    def gradient_norms(errors: tuple[float, float], balance: bool) -> list[float]:
        output = (target + torch.tensor(errors).view(2, 1, 1, 1)).requires_grad_()
        editing_loss(output, target, balance=balance).backward()
        return [output.grad[index].norm().item() for index in range(2)]

    plain = gradient_norms((0.01, 0.04), balance=False)
    balanced = gradient_norms((0.01, 0.04), balance=True)
    tiny = gradient_norms((BALANCE_FLOOR / 10, BALANCE_FLOOR / 3), balance=True)

    # Plain: the larger error gets a slightly larger gradient, from its MSE part. Balanced: the smaller error gets
    # about 4 times the gradient of the larger one, which is what the gradient of log(L1) would give.
    assert plain[1] / plain[0] == pytest.approx(1.08 / 1.02, rel=1e-3)
    assert balanced[0] / balanced[1] == pytest.approx((1.02 / 0.01) / (1.08 / 0.04), rel=1e-3)
    # Below the floor, errors are weighted alike.
    assert tiny[0] == pytest.approx(tiny[1], rel=0.01)


def test_continue_into_position_bias(tmp_path):
    import torch

    from hywu_cli.modeling import ParameterGenerator
    from hywu_cli.training import load_generator_weights

    config = {"targets": [["fc", 6, 5]], "rank": 2, "token_dim": 4, "cond_dim": 8, "width": 16, "depth": 1}
    torch.manual_seed(0)
    ParameterGenerator(**config).save_pretrained(tmp_path / "plain")
    ParameterGenerator(**config, position_bias=True).save_pretrained(tmp_path / "biased")

    continued = ParameterGenerator(**config, position_bias=True)
    load_generator_weights(continued, tmp_path / "plain")
    plain = ParameterGenerator.from_pretrained(tmp_path / "plain")

    assert torch.equal(continued.head_a.weight, plain.head_a.weight)
    assert torch.count_nonzero(continued.bias_tokens) == 0
    with pytest.raises(SystemExit, match="--position-bias"):
        load_generator_weights(ParameterGenerator(**config), tmp_path / "biased")
