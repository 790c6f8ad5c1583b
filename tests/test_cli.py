"""Tests for the `hywu` command line.

Most tests replace the model with `FakePipeline`, which inverts colours, so they check the CLI's own work
(argument checks, image I/O, naming, manifests, exit codes) in milliseconds. Tests marked `slow` run the real
packaged model and are skipped only while weights/hywu-lite/manifest.json is absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageOps
from typer.testing import CliRunner

from hywu_cli import imageio, models
from hywu_cli.cli import _common, app
from hywu_cli.cli.batch import output_name, read_prompts, slugify
from hywu_cli.errors import HywuWarning


REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGED_MODEL = REPO_ROOT / "weights" / "hywu-lite"
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 999\n"
RED = (255, 0, 0)
CYAN = (0, 255, 255)


# --- helpers -------------------------------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def timed_invoke(*args: str):
    started = time.perf_counter()
    result = invoke(*args)
    return result, time.perf_counter() - started


def close_to(actual, expected, tolerance: int = 16) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_image(path: Path, size=(32, 24), colour=(200, 120, 40), image_format: str | None = None) -> Path:
    Image.new("RGB", size, colour).save(path, format=image_format)
    return path


def write_oriented_jpeg(path: Path) -> Path:
    """Write a 40x20 stored JPEG with a red top-left block and EXIF Orientation 6 (displayed 20x40)."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    image.save(path, exif=exif.tobytes(), quality=95)
    return path


def write_truncated_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.effect_noise((128, 128), 64).convert("RGB").save(buffer, format="JPEG", quality=95)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def safetensors_bytes(raw: bytes) -> bytes:
    header = json.dumps({"weight": {"dtype": "U8", "shape": [len(raw)], "data_offsets": [0, len(raw)]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + raw


def make_model_dir(folder: Path) -> Path:
    (folder / "editor").mkdir(parents=True)
    (folder / "editor" / "config.json").write_text("{}\n")
    (folder / "editor" / "model.safetensors").write_bytes(safetensors_bytes(bytes(range(256)) * 4))
    models.build_manifest(folder, "hywu-lite", "0.1.0", {"editor": "editor"}, {"editor": "test licence text"})
    return folder


@dataclass
class FakeScope:
    in_scope: bool
    score: float
    closest: list


class FakePipeline:
    """Replacement for HywuPipeline that inverts colours, records calls, fails on instructions containing "explode"."""

    def __init__(self, model_dir: str, device: str, dtype: str) -> None:
        self.model_dir = Path(model_dir)
        self.model_name = "hywu-lite"
        self.device = device
        self.dtype = dtype
        self.batch_sizes: list[int] = []
        self.single_edits: list[str] = []
        self.literal = False

    def read_instructions(self, instructions):
        from hywu_cli.instruction_reader import InstructionReading

        readings = []
        for text in instructions:
            if text == "cosy, warm" and not self.literal:
                # A list whose parts read as two edits, while the whole reads as one.
                parts = (
                    InstructionReading("cosy", "add film grain", "film_grain", "normal", 0.6),
                    InstructionReading("warm", "make it warmer", "warmer", "normal", 0.9),
                )
                whole = InstructionReading(text, "make it warmer", "warmer", "normal", 0.7, unsplit_parts=parts)
                readings.append(whole)
            elif "warm" in text and not self.literal:
                grain = (InstructionReading("add grain", "add film grain", "film_grain", "normal", 0.8),)
                then = grain if text.endswith("and add grain") else ()
                readings.append(InstructionReading(text, "make it warmer", "warmer", "normal", 0.9, followed_by=then))
            elif text.startswith("remove") and not self.literal:
                readings.append(InstructionReading(text, text, None, None, 0.95, no_edit=True, matches_none=True))
            else:
                readings.append(InstructionReading(text, text, None, None, 0.0, no_edit=not self.literal))
        return readings

    def check_scope(self, instruction: str) -> FakeScope:
        if "moustache" in instruction:
            return FakeScope(False, 0.21, [("Warmer", 0.41), ("Vintage", 0.33)])
        return FakeScope(True, 0.83, [("Warmer", 0.83)])

    def edit_batch(self, images, instructions, *, strength=1.0, seeds):
        self.batch_sizes.append(len(images))
        assert len(seeds) == len(images)
        if any("explode" in instruction for instruction in instructions):
            raise RuntimeError("batch exploded")
        return [ImageOps.invert(image) for image in images]

    def edit(self, image, instruction, *, strength=1.0, seed=0):
        self.single_edits.append(instruction)
        if "explode" in instruction:
            raise RuntimeError("model exploded")
        return ImageOps.invert(image)

    def save_lora(self, image, instruction, directory, *, strength=1.0):
        directory = Path(directory)
        (directory / "adapter_config.json").write_text(json.dumps({"r": 4}))
        weights = directory / "adapter_model.safetensors"
        weights.write_bytes(safetensors_bytes(b"\x00" * 8))
        weights.chmod(0o600)  # safetensors writes through a private temporary file and leaves this mode
        return directory


class WarningPipeline(FakePipeline):
    """FakePipeline that warns about a long instruction in both the scope check and the edit, as the real one does."""

    def check_scope(self, instruction):
        warnings.warn(f"instruction {instruction[:20]!r} is longer than 32 word pieces", HywuWarning, stacklevel=2)
        return super().check_scope(instruction)

    def edit_batch(self, images, instructions, *, strength=1.0, seeds):
        for instruction in instructions:
            warnings.warn(f"instruction {instruction[:20]!r} is longer than 32 word pieces", HywuWarning, stacklevel=2)
        return super().edit_batch(images, instructions, strength=strength, seeds=seeds)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Point HOME, HYWU_HOME and the Hugging Face cache at tmp_path and install a small model there."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("HYWU_HOME", str(tmp_path / "hywu-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HYWU_MODEL", "HF_HUB_OFFLINE", "HYWU_MAX_PIXELS"):
        monkeypatch.delenv(name, raising=False)
    make_model_dir(tmp_path / "hywu-home" / "models" / "hywu-lite")
    return tmp_path


@pytest.fixture
def fake_pipe(home, monkeypatch):
    """Replace model loading with FakePipeline; `fake_pipe.loads` lists the (model, device, dtype) of each load."""
    state = {"pipe": None, "loads": []}

    def load(model, device, dtype):
        state["loads"].append((model, device, dtype))
        state["pipe"] = FakePipeline(model, device, dtype)
        return state["pipe"]

    monkeypatch.setattr(_common, "load_pipeline", load)
    return state


class ReaderPipeline(FakePipeline):
    """FakePipeline with an instruction reader that matches only instructions mentioning warmth."""

    reader = "fake reader"


@pytest.fixture
def reader_pipe(home, monkeypatch):
    """Replace model loading with ReaderPipeline."""
    monkeypatch.setattr(_common, "load_pipeline", lambda model, device, dtype: ReaderPipeline(model, device, dtype))


@pytest.fixture
def no_model(home, monkeypatch):
    """Fail the test if anything tries to load the model."""

    def load(model, device, dtype):
        raise AssertionError("the model was loaded, but this input should have failed before that")

    monkeypatch.setattr(_common, "load_pipeline", load)


def assert_one_line_error(result, exit_code: int, *fragments: str, alone: bool = True) -> None:
    """Check the exit code and that stderr ends with one `error:` line holding every fragment.

    With `alone`, that line must be all of stderr, as for inputs rejected before the model loads.
    """
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    if alone:
        assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0]


# --- general -------------------------------------------------------------------------------------------------


def test_version():
    result = invoke("--version")

    assert result.exit_code == 0
    assert re.fullmatch(r"hywu \d+\.\d+\.\d+\S*\n", result.stdout)


@pytest.mark.parametrize("command", [[], ["edit"], ["batch"], ["download-weights"], ["edits"], ["info"]])
def test_short_help_on_every_command(command):
    result = invoke(*command, "-h")

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


@pytest.mark.parametrize("command", [["--help"], ["edit", "--help"]])
def test_help_imports_no_heavy_modules(command):
    code = f"import sys; sys.argv = ['hywu', *{command!r}]; from hywu_cli.cli import main; main()"

    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=60
    )

    imported = {
        line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines() if line.startswith("import time:")
    }
    top_level = {name.split(".")[0] for name in imported}
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Usage:" in completed.stdout
    assert top_level.isdisjoint({"torch", "numpy", "transformers", "diffusers", "safetensors", "huggingface_hub"})


def test_no_arguments_shows_help():
    result = invoke()

    assert "Usage:" in result.output
    assert "edit" in result.output


def test_unknown_command():
    result = invoke("frobnicate")

    assert_one_line_error(result, 2, "frobnicate")


# --- edit: inputs rejected before the model loads ------------------------------------------------------------


def test_missing_image_fails_fast(no_model, tmp_path):
    result, elapsed = timed_invoke("edit", tmp_path / "nope.jpg", "make it warmer")

    assert_one_line_error(result, 2, "image not found", "nope.jpg")
    assert elapsed < 1.0


def test_webp_too_wide_fails_early(no_model, tmp_path):
    image = write_image(tmp_path / "wide.png", size=(16_400, 2))

    result = invoke("edit", image, "make it snowy", "-o", tmp_path / "wide.webp")

    assert_one_line_error(result, 1, "16400x2 exceeds the WEBP limit of 16383 pixels per side", "use .png or .tif")


def test_folder_as_image_fails_fast(no_model, tmp_path):
    result, elapsed = timed_invoke("edit", tmp_path, "make it warmer")

    assert_one_line_error(result, 2, "is a folder", "hywu batch")
    assert elapsed < 1.0


@pytest.mark.parametrize("instruction", ["", "   ", "\t\n"])
def test_empty_instruction_fails_fast(no_model, tmp_path, instruction):
    image = write_image(tmp_path / "photo.jpg")

    result, elapsed = timed_invoke("edit", image, instruction)

    assert_one_line_error(result, 2, "instruction is empty")
    assert elapsed < 1.0


def test_swapped_arguments_fail_fast(no_model, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result, elapsed = timed_invoke("edit", "make it warmer", image)

    assert_one_line_error(result, 2, "swapped", "image comes first")
    assert elapsed < 1.0


def test_sentence_as_image_explained(no_model):
    result = invoke("edit", "make it warmer", "please")

    assert_one_line_error(result, 2, "reads like an instruction")


def test_second_image_as_instruction_rejected(no_model, tmp_path):
    first = write_image(tmp_path / "a.jpg")
    second = write_image(tmp_path / "b.png")

    result = invoke("edit", first, second)

    assert_one_line_error(result, 2, "is an image file")


def test_unknown_option_exit_2(no_model, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result, elapsed = timed_invoke("edit", image, "make it warmer", "--bogus")

    assert_one_line_error(result, 2, "--bogus", "hywu edit -h")
    assert elapsed < 1.0


@pytest.mark.parametrize(
    ("option", "value"),
    [("--strength", "-1"), ("--strength", "nan"), ("--seed", "-3"), ("--device", "tpu"), ("--quality", "0")],
)
def test_bad_option_values_exit_2(no_model, tmp_path, option, value):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "make it warmer", option, value)

    assert_one_line_error(result, 2, option)


@pytest.mark.parametrize("value", ["-1", "4.5", "1e12", "inf", "-inf", "nan"])
def test_strength_outside_range_names_range(no_model, tmp_path, value):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "make it warmer", "--strength", value)

    assert_one_line_error(result, 2, "--strength", "from 0 to 4")


@pytest.mark.parametrize("value", ["0", "4"])
def test_strength_range_ends_accepted(fake_pipe, tmp_path, value):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "make it warmer", "--strength", value)

    assert result.exit_code == 0, result.output


def test_strength_limit_matches_pipeline():
    from hywu_cli import pipeline

    assert _common.MAX_STRENGTH == pipeline.MAX_STRENGTH


def test_long_instruction_not_checked_as_path(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    instruction = "make it warmer and brighter " * 12  # over 255 bytes, the usual file name limit

    result = invoke("edit", image, instruction)

    assert result.exit_code == 0, result.output
    assert (tmp_path / "photo_edited.jpg").is_file()


def test_long_sentence_as_image_explained(no_model):
    result = invoke("edit", "make it warmer and brighter " * 12, "photo.jpg")

    assert_one_line_error(result, 2, "reads like an instruction")


@pytest.mark.parametrize(
    ("arguments", "exit_code", "fragment"),
    [
        (["edit", "{tmp}/nope.jpg", "make it warmer"], 2, "image not found"),
        (["edit", "{tmp}/photo.jpg", "  "], 2, "instruction is empty"),
        (["edit", "{tmp}/photo.jpg", "make it warmer", "--bogus"], 2, "--bogus"),
        (["edit", "{tmp}/photo.jpg", "make it warmer", "--strength", "9"], 2, "from 0 to 4"),
        (["batch", "{tmp}/nowhere", "{tmp}/prompts.txt"], 2, "folder not found"),
        (["edit", "{tmp}/photo.jpg", "make it warmer", "--model", "./missing"], 1, "model folder not found"),
    ],
)
def test_json_error_line_for_every_error(no_model, tmp_path, arguments, exit_code, fragment):
    write_image(tmp_path / "photo.jpg")
    write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke(*[argument.format(tmp=tmp_path) for argument in arguments], "--json")

    assert result.exit_code == exit_code, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "error"
    assert fragment in data["error"]
    assert_one_line_error(result, exit_code, fragment)


def test_unwritable_output_folder_fails_fast(no_model, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("a regular file, so nothing can be created under it")

    result, elapsed = timed_invoke("edit", image, "make it warmer", "-o", blocker / "out" / "x.jpg")

    assert_one_line_error(result, 1, "cannot create output folder", "somefile.txt")
    assert elapsed < 1.0


def test_existing_output_kept(no_model, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    existing = tmp_path / "photo_edited.jpg"
    existing.write_bytes(b"earlier result")

    result = invoke("edit", image, "make it warmer")

    assert_one_line_error(result, 1, "already exists", "--overwrite")
    assert existing.read_bytes() == b"earlier result"


def test_output_is_input_rejected(no_model, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    before = sha256(image)

    result = invoke("edit", image, "make it warmer", "-o", image, "--overwrite")

    assert_one_line_error(result, 2, "input image")
    assert sha256(image) == before


def test_unsupported_output_extension(no_model, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "make it warmer", "-o", tmp_path / "out.gif")

    assert_one_line_error(result, 2, "unsupported extension", ".gif")


def test_failed_edit_creates_no_output_folder(no_model, tmp_path):
    image = write_truncated_jpeg(tmp_path / "cut.jpg")

    result = invoke("edit", image, "make it warmer", "-o", tmp_path / "out" / "x.jpg")

    assert_one_line_error(result, 1, "truncated")
    assert not (tmp_path / "out").exists()


def test_strict_failure_creates_no_adapter_folder(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "add a moustache", "--strict", "--save-lora", tmp_path / "adapter")

    assert result.exit_code == 1, result.output
    assert not (tmp_path / "adapter").exists()


def test_truncated_jpeg_fails_without_output(no_model, tmp_path):
    image = write_truncated_jpeg(tmp_path / "cut.jpg")

    result, elapsed = timed_invoke("edit", image, "make it warmer")

    assert_one_line_error(result, 1, "cut.jpg", "truncated")
    assert elapsed < 1.0
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == ["cut.jpg"]


def write_bomb_png(path: Path) -> Path:
    """Write a few-KB PNG whose header declares 20000x20000 pixels."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 40_004))
        + chunk(b"IEND", b"")
    )
    return path


def test_bomb_png_rejected_fast(no_model, tmp_path):
    image = write_bomb_png(tmp_path / "bomb.png")

    result, elapsed = timed_invoke("edit", image, "make it warmer")

    assert_one_line_error(result, 1, "120 megapixels", "HYWU_MAX_PIXELS")
    assert elapsed < 1.0


def test_verbose_shows_traceback(no_model, tmp_path):
    image = write_truncated_jpeg(tmp_path / "cut.jpg")

    result = invoke("edit", image, "make it warmer", "-v")

    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


# --- edit: broken model files --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["lfs_pointer", "cut_in_half"])
def test_broken_model_files_hint_download(no_model, home, damage):
    image = write_image(home / "photo.jpg")
    weights = home / "hywu-home" / "models" / "hywu-lite" / "editor" / "model.safetensors"
    if damage == "lfs_pointer":
        weights.write_bytes(LFS_POINTER)
    else:
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    result = invoke("edit", image, "make it warmer")

    assert_one_line_error(result, 1, "editor/model.safetensors", "hywu download-weights hywu-lite")
    assert not (home / "photo_edited.jpg").exists()


def test_missing_model_hint_download(no_model, home, monkeypatch):
    image = write_image(home / "photo.jpg")
    monkeypatch.setenv("HYWU_MODEL", "hywu-other")

    result = invoke("edit", image, "make it warmer")

    assert_one_line_error(result, 1, "hywu-other", "hywu download-weights hywu-other --url URL", "--repo-id")


def test_broken_model_path_hint_uses_dest(no_model, home):
    image = write_image(home / "photo.jpg")
    folder = home / "copies" / "hywu-lite"
    folder.mkdir(parents=True)

    result = invoke("edit", image, "make it warmer", "--model", folder)

    assert_one_line_error(result, 1, "manifest.json is missing", f"--dest {folder}")
    assert result.stderr.count("hywu download-weights") == 1


def test_model_name_not_shadowed_by_folder(fake_pipe, home, monkeypatch):
    monkeypatch.chdir(home)
    (home / "hywu-lite").mkdir()
    image = write_image(home / "photo.jpg")

    result = invoke("edit", image, "make it warmer")

    assert result.exit_code == 0, result.output
    assert Path(fake_pipe["loads"][0][0]) == home / "hywu-home" / "models" / "hywu-lite"


# --- edit: successful runs -----------------------------------------------------------------------------------


def test_edit_orientation_6_upright(fake_pipe, tmp_path):
    image = write_oriented_jpeg(tmp_path / "portrait.jpg")
    before = sha256(image)

    result = invoke("edit", image, "make it warmer", "--seed", "7", "--strength", "0.5")

    output = tmp_path / "portrait_edited.jpg"
    assert result.exit_code == 0, result.output
    assert sha256(image) == before
    with Image.open(output) as saved:
        assert saved.size == (20, 40)
        assert ExifTags.Base.Orientation not in saved.getexif()
        # FakePipeline inverts colours, so the red block (top right once upright) comes back cyan.
        assert close_to(saved.convert("RGB").getpixel((15, 5)), CYAN)
    metadata = imageio.read_metadata(output)
    assert metadata["instruction"] == "make it warmer"
    assert metadata["seed"] == "7"
    assert metadata["strength"] == "0.5"
    assert metadata["model"] == "hywu-lite"
    assert metadata["hywu_version"]


def test_edit_keeps_odd_size(fake_pipe, tmp_path):
    image = write_image(tmp_path / "odd.png", size=(427, 640))

    result = invoke("edit", image, "make it warmer")

    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "odd_edited.png") as saved:
        assert saved.size == (427, 640)


def test_edit_creates_missing_output_folder(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    output = tmp_path / "new" / "deeper" / "result.webp"

    result = invoke("edit", image, "make it warmer", "-o", output)

    assert result.exit_code == 0, result.output
    with Image.open(output) as saved:
        assert saved.format == "WEBP"


def test_edit_compare_and_lora(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    adapter = tmp_path / "adapter"

    result = invoke("edit", image, "make it warmer", "--compare", "--save-lora", adapter)

    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "photo_edited_compare.jpg") as comparison:
        assert comparison.width > 2 * 32
    assert (adapter / "adapter_config.json").is_file()


def test_saved_files_follow_umask(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    adapter = tmp_path / "adapter"
    expected = 0o666 & ~current_umask()

    result = invoke("edit", image, "make it warmer", "--save-lora", adapter)

    assert result.exit_code == 0, result.output
    assert (tmp_path / "photo_edited.jpg").stat().st_mode & 0o777 == expected
    assert (adapter / "adapter_config.json").stat().st_mode & 0o777 == expected
    assert (adapter / "adapter_model.safetensors").stat().st_mode & 0o777 == expected


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_edit_gif_input(fake_pipe, tmp_path):
    image = tmp_path / "logo.gif"
    Image.new("RGB", (12, 8), RED).save(image)

    result = invoke("edit", image, "make it warmer")

    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "logo_edited.png") as saved:
        assert close_to(saved.convert("RGB").getpixel((6, 4)), CYAN)


def test_edit_json_result(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "make it warmer", "--json", "--device", "cpu")

    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 0, result.output
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["status"] == "ok"
    assert data["output"] == str(tmp_path / "photo_edited.png")
    assert data["device"] == "cpu"
    assert data["size"] == [32, 24]
    assert data["in_scope"] is True


def test_edit_reports_reading(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "a warm glow please", "--json")
    data = json.loads(result.stdout.strip().splitlines()[-1])

    assert result.exit_code == 0, result.output
    assert "read 'a warm glow please' as: Warmer, normal" in result.stderr
    assert data["reading"]["family"] == "warmer"
    assert data["reading"]["conditioned_on"] == "make it warmer"


def test_edit_literal_skips_reading(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "a warm glow please", "--literal", "--json")
    data = json.loads(result.stdout.strip().splitlines()[-1])

    assert result.exit_code == 0, result.output
    assert "read 'a warm" not in result.stderr
    assert data["reading"] is None


def test_edit_reports_each_requested_edit(reader_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "warmer and add grain", "--json", "--save-lora", tmp_path / "adapter")

    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 0, result.output
    assert "as: Warmer, normal (confidence 0.90), then Film grain, normal (confidence 0.80)" in result.stderr
    assert data["reading"]["family"] == "warmer"
    assert data["reading"]["then"] == [
        {"family": "film_grain", "grade": "normal", "confidence": 0.8, "conditioned_on": "add film grain"}
    ]
    assert "holds only the first of the 2 edits" in result.stderr


def test_edit_warns_list_read_as_one(reader_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "cosy, warm", "--json", "-q")

    assert result.exit_code == 0, result.output
    assert "warning: only Warmer is applied: the parts of 'cosy, warm' read as Film grain, Warmer" in result.stderr
    assert "join the parts with ';' or 'then'" in result.stderr
    assert json.loads(result.stdout)["reading"]["parts_read_alone"] == ["film_grain", "warmer"]


@pytest.mark.parametrize(
    ("instruction", "warning", "advice", "other_warning"),
    [
        ("asdf", "warning: could not match 'asdf'", "rephrase it as one edit", "as edits applied in turn"),
        (
            "asdf; qwer",
            "warning: could not read 'asdf; qwer' as edits applied in turn",
            "leave out edits that undo each other",
            "could not match",
        ),
    ],
)
def test_edit_warns_unmatched_instruction(reader_pipe, tmp_path, instruction, warning, advice, other_warning):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, instruction)

    assert result.exit_code == 0, result.output
    assert warning in result.stderr
    assert advice in result.stderr
    assert other_warning not in result.stderr
    assert "left unchanged" in result.stderr
    assert (tmp_path / "photo_edited.png").is_file()


def test_edit_strict_rejects_unmatched_instruction(reader_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "asdf", "--strict")

    assert result.exit_code == 1
    assert "could not match 'asdf'" in result.stderr
    assert not (tmp_path / "photo_edited.png").exists()


def test_edit_warns_request_matching_no_edit(reader_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "remove the fog", "--json")

    assert result.exit_code == 0, result.output
    assert "warning: 'remove the fog' matches none of" in result.stderr
    assert "left unchanged" in result.stderr
    assert "could not match" not in result.stderr
    assert json.loads(result.stdout)["reading"]["leaves_photo_unchanged"] is True


def test_edit_strict_rejects_request_matching_no_edit(reader_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "remove the fog", "--strict")

    assert result.exit_code == 1
    assert "'remove the fog' matches none of" in result.stderr
    assert not (tmp_path / "photo_edited.png").exists()


def test_edit_literal_accepts_unmatched_instruction(reader_pipe, tmp_path):
    image = write_image(tmp_path / "photo.png")

    result = invoke("edit", image, "asdf", "--strict", "--literal", "--json")

    assert result.exit_code == 0, result.output
    assert "could not match" not in result.stderr
    assert json.loads(result.stdout)["reading"] is None


def test_edit_json_error_line(no_model, tmp_path):
    image = write_truncated_jpeg(tmp_path / "cut.jpg")

    result = invoke("edit", image, "make it warmer", "--json")

    data = json.loads(result.stdout)
    assert result.exit_code == 1
    assert data["status"] == "error"
    assert "cut.jpg" in data["error"]


def test_edit_overwrite(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")
    (tmp_path / "photo_edited.jpg").write_bytes(b"old")

    result = invoke("edit", image, "make it warmer", "--overwrite")

    assert result.exit_code == 0, result.output
    assert imageio.sniff_image(tmp_path / "photo_edited.jpg")


def test_edit_reports_auto_device(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "make it warmer")

    model, device, dtype = fake_pipe["loads"][0]
    assert result.exit_code == 0, result.output
    assert device in ("cpu", "cuda", "mps")
    assert f"on {device} (chosen by --device auto)" in result.stderr
    assert Path(model) == Path(result.stderr.split("loading ", 1)[1].split(" on ")[0])


def test_half_dtype_on_cpu_falls_back_once(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "make it warmer", "--device", "cpu", "--dtype", "float16")

    assert result.exit_code == 0, result.output
    assert fake_pipe["loads"][0][1:] == ("cpu", "float32")
    assert result.stderr.count("using float32") == 1


def test_model_from_environment(fake_pipe, home, monkeypatch):
    other = make_model_dir(home / "elsewhere" / "my-model")
    monkeypatch.setenv("HYWU_MODEL", str(other))
    image = write_image(home / "photo.jpg")

    result = invoke("edit", image, "make it warmer")

    assert result.exit_code == 0, result.output
    assert Path(fake_pipe["loads"][0][0]) == other


def test_strict_rejects_out_of_scope(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "add a moustache", "--strict")

    assert_one_line_error(result, 1, "outside", "Warmer (0.41)", "--strict", alone=False)
    assert not (tmp_path / "photo_edited.jpg").exists()


def test_unread_out_of_scope_warns_twice(fake_pipe, tmp_path):
    # The scope check cannot know whether the reader matches the instruction, so a second warning states it did not.
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "add a moustache", "-q")

    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 2
    assert "closest supported edits: Warmer (0.41), Vintage (0.33)" in result.stderr
    assert "'add a moustache' matches none of the edits, so its photo is left unchanged" in result.stderr
    assert (tmp_path / "photo_edited.jpg").is_file()


def test_edit_announces_kernel_compile(fake_pipe, tmp_path, monkeypatch):
    from hywu_cli import rendering

    image = write_image(tmp_path / "photo.jpg")
    monkeypatch.setattr(rendering, "compiled_kernel_pending", lambda pixels: pixels == 32 * 24)

    result = invoke("edit", image, "make it warmer")

    assert result.exit_code == 0, result.output
    assert "compiling the renderer for photos of 8 megapixels and more" in result.stderr


def test_quiet_prints_nothing(fake_pipe, tmp_path):
    image = write_image(tmp_path / "photo.jpg")

    result = invoke("edit", image, "make it warmer", "-q")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == ""


# --- batch ---------------------------------------------------------------------------------------------------


def test_prompts_file_parsing(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes(
        "\ufeffmake it warmer\r\n\r\n# a comment\r\n   \r\n  more contrast  \r\n空を青く\r\nadd sunshine ☀️\r\n#another\n".encode()
    )

    assert read_prompts(path) == ["make it warmer", "more contrast", "空を青く", "add sunshine ☀️"]


def test_prompts_undecodable_line_number(tmp_path):
    import typer

    path = tmp_path / "prompts.txt"
    path.write_bytes(b"make it warmer\nfine\ncaf\xe9 style\n")

    with pytest.raises(typer.BadParameter, match="line 3 is not valid UTF-8"):
        read_prompts(path)


def test_prompts_utf16_rejected(tmp_path):
    import typer

    path = tmp_path / "prompts.txt"
    path.write_bytes("make it warmer\n".encode("utf-16"))

    with pytest.raises(typer.BadParameter, match="UTF-16"):
        read_prompts(path)


def test_batch_undecodable_prompts_before_model(no_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg")
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"# header\nok\n\xff\xfe broken\n")

    result = invoke("batch", folder, prompts)

    assert_one_line_error(result, 2, "line 3")
    assert not (folder / "hywu-out").exists()


def test_output_names_safe_and_distinct():
    long_tail = "x" * 300
    instructions = [
        "make it warmer",
        "make it warmer/../../etc",
        "空を青く",
        "Make it WARMER",
        "a" * 40 + long_tail,
        "a" * 40 + long_tail + "!",
        'CON: <>|?*"\\ \x00\x1f',
    ]

    names = [output_name(Path("sub/IMG 1.JPG"), text, ".jpg") for text in instructions]

    assert len({name.casefold() for name in names}) == len(names)
    for name in names:
        assert re.fullmatch(r"IMG 1__[a-z0-9-]+-[0-9a-f]{8}\.jpg", name), name
        assert len(name.encode()) <= 120
    assert slugify("空を青く") == "edit"
    assert slugify("Make it WARMER!") == "make-it-warmer"


def write_prompts(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def mixed_folder(tmp_path):
    """A folder mixing good images (.jpg, .png, upper-case .JPG, .webp) with broken and unrelated files."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "good.jpg")
    write_image(folder / "good2.png", size=(427, 640))
    write_image(folder / "UPPER.JPG", image_format="JPEG")
    write_image(folder / "pic.webp", image_format="WEBP")
    write_truncated_jpeg(folder / "truncated.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("shopping list\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    (folder / "sub").mkdir()
    write_image(folder / "sub" / "inner.png")
    out = folder / "hywu-out"
    out.mkdir()
    (out / "unrelated.txt").write_text("leave me alone")
    write_image(out / "old-result.png")
    return folder


def read_manifest(folder: Path) -> list[dict]:
    text = (folder / "hywu-out" / "hywu-manifest.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_batch_mixed_folder(fake_pipe, mixed_folder, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer", "空を青く")
    out = mixed_folder / "hywu-out"

    result = invoke("batch", mixed_folder, prompts)

    assert result.exit_code == 1, result.output
    outputs = sorted(path.name for path in out.iterdir() if "__" in path.name)
    assert len(outputs) == 8
    assert {Path(name).suffix for name in outputs} == {".jpg", ".png", ".webp"}
    assert (out / "unrelated.txt").read_text() == "leave me alone"
    assert not any(name.startswith("inner__") or name.startswith("old-result__") for name in outputs)
    with Image.open(next(out.glob("good2__*.png"))) as saved:
        assert saved.size == (427, 640)

    records = read_manifest(mixed_folder)
    by_status = {}
    for record in records:
        by_status.setdefault(record["status"], []).append(record)
    assert len(by_status["ok"]) == 8
    failed_files = sorted(Path(record["image"]).name for record in by_status["failed"])
    assert failed_files == ["empty.jpg", "truncated.jpg", "truncated.jpg"]
    assert [Path(record["image"]).name for record in by_status["skipped"]] == ["notes.txt"]
    assert not any(".DS_Store" in record["image"] for record in records)
    assert all(record["seed"] == 0 and record["model"] == "hywu-lite" for record in records)
    assert all("edit" in record["seconds"] for record in by_status["ok"])
    assert "failed jobs" in result.stderr
    assert "truncated.jpg" in result.stderr
    assert len(fake_pipe["loads"]) == 1


def test_batch_recursive_skips_output_folder(fake_pipe, mixed_folder, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke("batch", mixed_folder, prompts, "--recursive")

    out = mixed_folder / "hywu-out"
    assert result.exit_code == 1, result.output
    assert len(list((out / "sub").glob("inner__make-it-warmer-*.png"))) == 1
    assert not list(out.rglob("old-result__*"))


def test_batch_sizes_and_single_load(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(folder / name)
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer", "more contrast")

    result = invoke("batch", folder, prompts, "--batch-size", "4")

    assert result.exit_code == 0, result.output
    assert fake_pipe["pipe"].batch_sizes == [4, 2]
    assert len(fake_pipe["loads"]) == 1
    assert len(list((folder / "hywu-out").glob("*__*.jpg"))) == 6
    assert "[6/6] unchanged" in result.stderr  # the fake reader matches "more contrast" to no edit


def test_batch_manifest_records_reading(reader_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg")
    prompts = write_prompts(tmp_path / "prompts.txt", "a warm glow", "asdf")

    result = invoke("batch", folder, prompts)
    lines = (folder / "hywu-out" / "hywu-manifest.jsonl").read_text(encoding="utf-8").splitlines()
    readings = {record["instruction"]: record["reading"] for record in map(json.loads, lines)}

    assert result.exit_code == 0, result.output
    assert readings["a warm glow"]["family"] == "warmer"
    assert readings["asdf"]["family"] is None
    assert "could not match 'asdf'" in result.stderr


def test_batch_failure_isolated(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer", "explode please")

    result = invoke("batch", folder, prompts)

    records = read_manifest(folder)
    assert result.exit_code == 1
    assert [record["status"] for record in records] == ["ok", "failed"]
    assert "model exploded" in records[1]["error"]


def test_batch_resume_with_skip_existing(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg")
    write_image(folder / "b.jpg")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")
    assert invoke("batch", folder, prompts).exit_code == 0
    first_outputs = sorted((folder / "hywu-out").glob("*__*.jpg"))
    first_outputs[0].unlink()

    rejected = invoke("batch", folder, prompts)
    resumed = invoke("batch", folder, prompts, "--skip-existing")

    assert_one_line_error(rejected, 1, "already exist", "--skip-existing", alone=False)
    assert resumed.exit_code == 0, resumed.output
    assert sorted((folder / "hywu-out").glob("*__*.jpg")) == first_outputs
    last_run = read_manifest(folder)[-2:]
    assert sorted(record["status"] for record in last_run) == ["ok", "skipped"]


def test_batch_json_summary(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke("batch", folder, prompts, "--json")

    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 0, result.output
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["ok"] == 1
    assert data["failed"] == 0
    assert data["manifest"].endswith("hywu-manifest.jsonl")


def test_batch_counts_unchanged_photos_apart(reader_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    write_image(folder / "b.png")
    prompts = write_prompts(tmp_path / "prompts.txt", "a warm glow please", "asdf")

    result = invoke("batch", folder, prompts, "--json")
    table = invoke("batch", folder, prompts, "--overwrite")

    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 0, result.output
    assert data["ok"] == 4
    assert data["unchanged"] == 2
    assert table.exit_code == 0, table.output
    assert re.search(r"edited\s*│\s*2\b", table.stderr), table.stderr
    assert re.search(r"saved unchanged \(instruction matched no edit\)\s*│\s*2\b", table.stderr), table.stderr
    assert re.search(r"\] unchanged a\.png: 'asdf'", table.stderr), table.stderr
    assert re.search(r"\] ok a\.png: 'a warm glow please'", table.stderr), table.stderr


def test_batch_custom_output_dir_created(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")
    out = tmp_path / "results" / "run1"

    result = invoke("batch", folder, prompts, "-o", out)

    assert result.exit_code == 0, result.output
    assert len(list(out.glob("a__make-it-warmer-*.png"))) == 1


def test_batch_unwritable_output_dir_fails_fast(no_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("not a folder")

    result, elapsed = timed_invoke("batch", folder, prompts, "-o", blocker / "out")

    assert_one_line_error(result, 1, "cannot create output folder")
    assert elapsed < 1.0


def test_batch_missing_folder_exit_2(no_model, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke("batch", tmp_path / "nowhere", prompts)

    assert_one_line_error(result, 2, "nowhere")


def test_batch_output_dir_equal_to_folder_rejected(no_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke("batch", folder, prompts, "-o", folder)

    assert_one_line_error(result, 2, "--output-dir")


def test_batch_strict_out_of_scope_writes_nothing(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer", "add a moustache")

    result = invoke("batch", folder, prompts, "--strict")

    assert_one_line_error(result, 1, "add a moustache", alone=False)
    assert not (folder / "hywu-out").exists()


def test_batch_strict_names_every_rejected_instruction(reader_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    prompts = write_prompts(
        tmp_path / "prompts.txt", "make it warmer", "add a moustache", "remove the fog", "asdf", "asdf; qwer"
    )

    result = invoke("batch", folder, prompts, "--strict")

    assert_one_line_error(
        result,
        1,
        "--strict rejected 4 instructions: 'add a moustache' (outside hywu-lite's edits; closest: Warmer (0.41), ",
        "'remove the fog' (matches none of hywu-lite's edits)",
        "'asdf' (could not be matched to one edit)",
        "'asdf; qwer' (its parts do not all read clearly as edits)",
        "pass --literal to apply the unread ones as written, or run without --strict",
        alone=False,
    )
    assert result.stderr.count("--strict") == 2  # once in the list's heading, once in the advice
    assert "left unchanged" not in result.stderr
    assert not (folder / "hywu-out").exists()


def test_batch_strict_lists_ten_in_order(reader_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png")
    bad = [f"qwzx {number}" for number in range(12)]
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer", *bad, "add a moustache")

    result = invoke("batch", folder, prompts, "--strict")

    assert_one_line_error(result, 1, "--strict rejected 13 instructions: 'qwzx 0' (", "; and 3 more.", alone=False)
    listed = result.stderr.splitlines()[-1]
    assert listed.index("'qwzx 0'") < listed.index("'qwzx 9'")
    assert "'qwzx 10'" not in listed
    assert "moustache" not in listed


def test_batch_output_on_stderr_result_on_stdout(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke("batch", folder, prompts)

    out = folder / "hywu-out"
    assert result.exit_code == 0, result.output
    assert "[1/1] ok" in result.stderr
    assert "hywu batch summary" in result.stderr
    assert result.stdout == f"outputs: {out}\nmanifest: {out / 'hywu-manifest.jsonl'}\n"


def test_batch_quiet_lists_only_failures(fake_pipe, mixed_folder, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer", "explode please")

    result = invoke("batch", mixed_folder, prompts, "-q")

    lines = result.stderr.strip().splitlines()
    failures = [line for line in lines if line.startswith("failed: ")]
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "summary" not in result.stderr
    assert all(line.startswith(("failed: ", "warning: ")) for line in lines), result.stderr
    # 4 images fail "explode please", truncated.jpg fails both instructions, empty.jpg is broken
    assert len(failures) == 7
    assert not any("notes.txt" in line for line in lines)


def test_batch_warning_printed_once(fake_pipe, monkeypatch, tmp_path):
    monkeypatch.setattr(_common, "load_pipeline", WarningPipeline)
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg")
    write_image(folder / "b.jpg")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer " * 20)

    result = invoke("batch", folder, prompts)

    assert result.exit_code == 0, result.output
    assert result.stderr.count("longer than 32 word pieces") == 1


def test_batch_swapped_arguments_hint(no_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke("batch", prompts, folder)

    assert_one_line_error(result, 2, "look swapped", f"hywu batch {folder} {prompts}")


def test_batch_oversized_image_rejected_before_model(no_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_bomb_png(folder / "bomb.png")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result, elapsed = timed_invoke("batch", folder, prompts)

    assert_one_line_error(result, 1, "bomb.png", "120 megapixels")
    assert elapsed < 1.0
    assert not (folder / "hywu-out").exists()


def test_batch_oversized_image_listed_as_broken(fake_pipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_bomb_png(folder / "bomb.png")
    write_image(folder / "good.jpg")
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer")

    result = invoke("batch", folder, prompts, "--json")

    data = json.loads(result.stdout)
    records = {Path(record["image"]).name: record for record in read_manifest(folder)}
    assert result.exit_code == 1
    assert data["ok"] == 1
    assert data["broken_files"] == 1
    assert records["bomb.png"]["instruction"] is None
    assert "120 megapixels" in records["bomb.png"]["error"]


# --- edits and info ------------------------------------------------------------------------------------------


def test_edits_lists_families():
    from hywu_cli.phrasings import FAMILY_PHRASINGS

    table = invoke("edits")
    listing = invoke("edits", "--json")

    families = json.loads(listing.stdout)["families"]
    assert table.exit_code == 0, table.output
    assert len(families) == len(FAMILY_PHRASINGS)
    assert all(len(family["examples"]) == 2 for family in families)
    first = next(iter(FAMILY_PHRASINGS.values()))
    assert first.title in table.stdout


def test_info_reports_model(home):
    result = invoke("info", "--json")

    data = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert data["hywu"]
    assert "version" in data["torch"]
    assert data["memory"]["total_bytes"] > 0
    assert data["model"]["path"] == str(home / "hywu-home" / "models" / "hywu-lite")
    assert data["model"]["licences"] == {"editor": "test licence text"}
    assert [entry["path"] for entry in data["model"]["files"]] == ["editor/config.json", "editor/model.safetensors"]


def test_info_table(home):
    result = invoke("info")

    assert result.exit_code == 0, result.output
    assert "test licence text" in result.stdout
    assert "editor/model.safetensors" in result.stdout


def test_info_model_path_has_no_search_path(home):
    folder = make_model_dir(home / "elsewhere" / "my-model")

    data = json.loads(invoke("info", "--json", "--model", folder).stdout)
    table = invoke("info", "--model", folder)

    assert data["model_search_path"] == []
    assert data["model"]["path"] == str(folder)
    assert table.exit_code == 0, table.output
    assert "search path" not in table.stdout
    assert str(home / "hywu-home" / "models") not in table.stdout


def test_info_search_path_follows_model_name(home):
    data = json.loads(invoke("info", "--json", "--model", "other-model").stdout)

    assert data["model_search_path"][0] == str(home / "hywu-home" / "models" / "other-model")


# --- real packaged model -------------------------------------------------------------------------------------

needs_packaged_model = pytest.mark.skipif(
    not (PACKAGED_MODEL / "manifest.json").is_file(), reason="weights/hywu-lite is not in this checkout yet"
)


@pytest.fixture
def real_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HYWU_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("HYWU_MODEL", raising=False)
    return PACKAGED_MODEL


@pytest.mark.slow
@needs_packaged_model
def test_real_model_edit(real_model, tmp_path):
    image = write_oriented_jpeg(tmp_path / "portrait.jpg")

    result = invoke(
        "edit", image, "make it warmer", "--device", "cpu", "--json", "--compare", "--save-lora", tmp_path / "lora"
    )

    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 0, result.output
    assert data["model_dir"] == str(real_model)
    with Image.open(tmp_path / "portrait_edited.jpg") as saved:
        assert saved.size == (20, 40)
        assert ExifTags.Base.Orientation not in saved.getexif()
    assert (tmp_path / "lora" / "adapter_config.json").is_file()


@pytest.mark.slow
@needs_packaged_model
def test_real_model_batch(real_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.jpg", size=(64, 48))
    write_image(folder / "b.png", size=(427, 640))
    prompts = write_prompts(tmp_path / "prompts.txt", "make it warmer", "more contrast", "black and white")

    result = invoke("batch", folder, prompts, "--device", "cpu", "--batch-size", "4")

    assert result.exit_code == 0, result.output
    records = read_manifest(folder)
    assert [record["status"] for record in records] == ["ok"] * 6


@pytest.mark.slow
@needs_packaged_model
def test_real_model_verified_by_download_weights(real_model):
    result = invoke("download-weights", "hywu-lite", "--json")

    data = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert data["source"] == "local"
    assert data["path"] == str(real_model)
