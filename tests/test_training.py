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


def test_training_resumes_from_checkpoint(workspace):
    run([sys.executable, "-m", "hywu_cli.training", *training_command(workspace, 2)])
    shutil.rmtree(workspace / "work" / "generator" / "final")

    result = run([sys.executable, "-m", "hywu_cli.training", *training_command(workspace, 3)])

    assert "base editor already trained" in result.stderr
    assert "at step 2" in result.stderr
    assert "generator step 3/3" in result.stderr
    assert "generator step 1/3" not in result.stderr


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
