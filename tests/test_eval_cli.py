"""`hywu eval` on the packaged model, with baselines that are known to equal the bare base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from hywu_cli.cli import app


ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "weights" / "hywu-lite"

pytestmark = pytest.mark.skipif(not (MODEL / "manifest.json").is_file(), reason="weights/hywu-lite not built yet")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    with Image.open(ROOT / "examples" / "pagoda.jpg") as image:
        image.convert("RGB").resize((160, 120)).save(folder / "pagoda.png")
    return folder


@pytest.fixture
def baselines(tmp_path):
    """A copy of the base as "SFT" and an untrained (no-op) static LoRA: both must score exactly like the base."""
    from hywu_cli.baselines import StaticLora
    from hywu_cli.editor import LORA_TARGET_PATTERNS, LiteEditorNetwork
    from hywu_cli.injection import inject_generated_lora

    work = tmp_path / "work"
    shutil.copytree(MODEL / "editor", work / "sft" / "final")
    targets = inject_generated_lora(LiteEditorNetwork(), LORA_TARGET_PATTERNS)
    (work / "static_lora" / "final").mkdir(parents=True)
    StaticLora(targets, rank=4, lora_alpha=4.0).save(work / "static_lora" / "final" / "static_lora.safetensors")
    return work


def test_eval_scores_all_methods(photos, baselines, tmp_path):
    arguments = ["eval", "--model", str(MODEL), "--photos", str(photos), "--baselines", str(baselines)]
    arguments += ["--families", "brighter,darker,invert", "--max-phrasings", "1", "--json"]
    arguments += ["--markdown", str(tmp_path / "eval.md"), "--json-file", str(tmp_path / "eval.json")]

    result = CliRunner().invoke(app, arguments)

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    methods = payload["methods"]
    assert list(methods) == ["base", "sft", "static_lora", "hywu"]
    for family in ("brighter", "darker", "invert"):
        base = methods["base"]["families"][family]["psnr"]
        assert methods["sft"]["families"][family]["psnr"] == base
        assert methods["static_lora"]["families"][family]["psnr"] == base
    # The generated update must teach the base the unseen family.
    assert methods["hywu"]["families"]["invert"]["psnr"] > methods["base"]["families"]["invert"]["psnr"] + 1
    assert payload["summary"]["conflicting_pairs"]["brighter/darker"]["base"] > 0
    assert "| invert |" in (tmp_path / "eval.md").read_text()
    assert json.loads((tmp_path / "eval.json").read_text())["summary"]["photos"] == 1


@pytest.mark.parametrize(
    "arguments,fragment",
    [
        (["--families", "brighter,teleport"], "unknown family"),
        (["--phrasings", "everything"], "is not one of"),
    ],
)
def test_eval_rejects_bad_options(photos, arguments, fragment):
    result = CliRunner().invoke(app, ["eval", "--model", str(MODEL), "--photos", str(photos), *arguments])

    assert result.exit_code == 2
    assert fragment in result.output


def test_eval_missing_photos_and_baselines(tmp_path, photos):
    missing = CliRunner().invoke(app, ["eval", "--model", str(MODEL), "--photos", str(tmp_path / "nowhere")])
    no_baselines = CliRunner().invoke(
        app, ["eval", "--model", str(MODEL), "--photos", str(photos), "--baselines", str(tmp_path)]
    )

    assert missing.exit_code == 1
    assert "python -m hywu_cli.photos" in missing.output
    assert no_baselines.exit_code == 1
    assert "--stages sft,static_lora" in no_baselines.output


def test_eval_rejects_bad_report_paths(photos, tmp_path):
    photo = next(photos.iterdir())
    original = photo.read_bytes()
    common = ["eval", "--model", str(MODEL), "--photos", str(photos), "--families", "brighter"]

    onto_photo = CliRunner().invoke(app, [*common, "--json-file", str(photo)])
    same_file = CliRunner().invoke(app, [*common, "--markdown", str(tmp_path / "r"), "--json-file", str(tmp_path / "r")])
    markdown_onto_photo = CliRunner().invoke(app, [*common, "--markdown", str(photo)])

    assert onto_photo.exit_code == 2
    assert "one of the photos" in onto_photo.output
    assert photo.read_bytes() == original
    assert same_file.exit_code == 2
    assert markdown_onto_photo.exit_code == 2


def test_eval_report_folders_and_overwrite(photos, tmp_path):
    report = tmp_path / "new" / "folder" / "eval.md"
    common = ["eval", "--model", str(MODEL), "--photos", str(photos), "--families", "brighter", "--max-phrasings", "1"]

    first = CliRunner().invoke(app, [*common, "--markdown", str(report)])
    second = CliRunner().invoke(app, [*common, "--markdown", str(report)])
    third = CliRunner().invoke(app, [*common, "--markdown", str(report), "--overwrite"])

    assert first.exit_code == 0, first.output
    assert "| brighter |" in report.read_text()
    assert second.exit_code == 1
    assert "--overwrite" in second.output
    assert third.exit_code == 0


def test_eval_names_broken_baseline_file(photos, baselines):
    (baselines / "static_lora" / "final" / "static_lora.safetensors").write_bytes(b"not a safetensors file")

    result = CliRunner().invoke(
        app, ["eval", "--model", str(MODEL), "--photos", str(photos), "--baselines", str(baselines), "--families", "brighter"]
    )

    assert result.exit_code == 1
    assert "static_lora.safetensors" in result.output
    assert "--stages sft,static_lora" in result.output


def test_eval_skips_unusable_photos(photos):
    Image.new("RGB", (8, 8)).save(photos / "tiny.png")
    (photos / "notes.jpg").write_text("not an image")

    result = CliRunner().invoke(
        app, ["eval", "--model", str(MODEL), "--photos", str(photos), "--families", "brighter", "--max-phrasings", "1", "--json"]
    )

    assert result.exit_code == 0, result.output
    assert "tiny.png" in result.output
    assert "cannot be read as images" in result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["summary"]["photos"] == 1


def test_training_scores_give_wording_ratio(photos, tmp_path):
    common = ["eval", "--model", str(MODEL), "--photos", str(photos), "--families", "warmer,invert", "--json"]
    train_file = tmp_path / "train.json"

    trained = CliRunner().invoke(app, [*common, "--phrasings", "train", "--json-file", str(train_file)])
    held_out = CliRunner().invoke(app, [*common, "--training-scores", str(train_file), "--max-phrasings", "3"])

    assert trained.exit_code == 0, trained.output
    assert held_out.exit_code == 0, held_out.output
    payload = json.loads(held_out.stdout.strip().splitlines()[-1])
    ratio = payload["summary"]["wording_ratio"]["hywu"]
    assert set(payload["summary"]["wording_ratio"]) == {"base", "hywu"}
    assert ratio["families"] == 2
    assert ratio["ratio"] == pytest.approx(ratio["held_out_psnr"] / ratio["training_psnr_grade_matched"], abs=1e-3)
    grades = payload["methods"]["hywu"]["families"]["warmer"]["samples_by_grade"]
    assert sum(grades.values()) == 3


def test_training_scores_need_training_phrasings(photos, tmp_path):
    held_out_file = tmp_path / "heldout.json"
    common = ["eval", "--model", str(MODEL), "--photos", str(photos), "--families", "warmer", "--max-phrasings", "1"]
    assert CliRunner().invoke(app, [*common, "--json-file", str(held_out_file)]).exit_code == 0
    (tmp_path / "broken.json").write_text("{not json")

    wrong_split = CliRunner().invoke(app, [*common, "--training-scores", str(held_out_file)])
    missing = CliRunner().invoke(app, [*common, "--training-scores", str(tmp_path / "absent.json")])
    broken = CliRunner().invoke(app, [*common, "--training-scores", str(tmp_path / "broken.json")])

    assert wrong_split.exit_code != 0
    assert "hywu eval --phrasings train" in wrong_split.output
    assert missing.exit_code != 0
    assert "not found" in missing.output
    assert broken.exit_code != 0
    assert "not a readable JSON file" in broken.output


def test_quiet_eval_prints_no_table(photos):
    arguments = ["eval", "--model", str(MODEL), "--photos", str(photos), "--families", "warmer", "--max-phrasings", "1"]

    result = CliRunner().invoke(app, [*arguments, "-q"])

    assert result.exit_code == 0, result.output
    assert "warmer" not in result.output
    assert "mean" not in result.output


def test_mismatched_training_scores_rejected_early(photos, tmp_path):
    train_file = tmp_path / "train.json"
    common = ["eval", "--model", str(MODEL), "--photos", str(photos), "--max-phrasings", "1"]
    written = CliRunner().invoke(app, [*common, "--families", "warmer", "--phrasings", "train", "--json-file", str(train_file)])
    assert written.exit_code == 0, written.output
    shutil.copy(photos / "pagoda.png", photos / "second.png")
    report = tmp_path / "report.md"

    def compare(*arguments: str):
        return CliRunner().invoke(app, [*common, "--training-scores", str(train_file), "--markdown", str(report), *arguments])

    other_family = compare("--families", "warmer,autumn", "--max-photos", "1")
    other_photos = compare("--families", "warmer")
    literal = compare("--families", "warmer", "--max-photos", "1", "--literal")

    assert other_family.exit_code == 1
    assert "no scores for autumn" in other_family.output
    assert other_photos.exit_code == 1
    assert "1 photo and this run uses 2 photos" in other_photos.output
    assert literal.exit_code == 1
    assert "with the instruction reader" in literal.output
    assert not report.exists()  # rejected before any scoring or writing
