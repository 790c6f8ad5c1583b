"""`hywu edit IMAGE INSTRUCTION`: edit one photo."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hywu_cli import models
from hywu_cli.cli import _common
from hywu_cli.cli._common import (
    Device,
    DeviceOption,
    Dtype,
    DtypeOption,
    JsonOption,
    LiteralOption,
    ModelOption,
    QualityOption,
    QuietOption,
    SeedOption,
    StrengthOption,
    StrictOption,
    VerboseOption,
)
from hywu_cli.errors import OutputPathError


if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

# Files `peft.PeftModel.save_pretrained` writes into an adapter folder.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def edit(
    image: Annotated[
        Path, typer.Argument(help="Photo to edit: JPEG, PNG, WebP, TIFF, BMP or GIF.", show_default=False)
    ],
    instruction: Annotated[
        str, typer.Argument(help='The edit in plain English, e.g. "make it warmer".', show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Output file; its extension sets the format. Default: <stem>_edited.<ext> next to IMAGE.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace output files that already exist.")] = False,
    strength: StrengthOption = 1.0,
    seed: SeedOption = 0,
    device: DeviceOption = Device.auto,
    dtype: DtypeOption = Dtype.auto,
    model: ModelOption = models.DEFAULT_MODEL,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Also write a side-by-side before/after image, <output stem>_compare.<ext>."),
    ] = False,
    save_lora: Annotated[
        Path | None,
        typer.Option(
            "--save-lora",
            metavar="DIR",
            help="Also save this edit's generated LoRA update as a PEFT adapter folder.",
            show_default=False,
        ),
    ] = None,
    quality: QualityOption = 92,
    strict: StrictOption = False,
    literal: LiteralOption = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
) -> None:
    """Edit IMAGE as INSTRUCTION describes and write the result next to it.

    Example: hywu edit photo.jpg "make it warmer" --compare
    """
    with _common.command_session(verbose=verbose, quiet=quiet, json_output=json_output) as reporter:
        from hywu_cli import imageio

        started = time.perf_counter()

        # 1. Check the arguments; nothing heavy is imported yet
        image = _common.check_image_argument(image, instruction)
        instruction = _common.check_instruction(instruction)
        output = output if output is not None else default_output_path(image)
        _common.check_output_file(output, image=image, overwrite=overwrite, option="--output")
        compare_path = output.with_name(f"{output.stem}_compare{output.suffix}") if compare else None
        if compare_path is not None:
            _common.check_output_file(compare_path, image=image, overwrite=overwrite, option="--output")
        _common.check_output_dir(output.parent)
        if save_lora is not None:
            check_lora_dir(save_lora, overwrite=overwrite)

        # 2. Read the image, which rejects truncated, oversized and unsupported files
        loaded = imageio.load_image(image)
        logger.debug("read %s: %s %s, %dx%d stored, orientation %d", image, loaded.format, loaded.mode,
                     *loaded.stored_size, loaded.orientation)  # fmt: skip
        imageio.check_output_size(output, loaded.image.size)  # before the model loads, not after the edit

        # 3. Load the model
        pipe = _common.open_pipeline(model, device, dtype, reporter)
        model_loaded = time.perf_counter()

        _common.announce_kernel_compile(loaded.image.width * loaded.image.height, reporter)

        # 4. Compare the instruction with the edits the model was trained on
        scope = _common.check_scope(pipe, [instruction], strict=strict, reporter=reporter)[instruction]
        reading = _common.read_instructions(
            pipe, [instruction], literal=literal, strict=strict, reporter=reporter, scope={instruction: scope}
        )[instruction]

        # 5. Edit
        edited = pipe.edit(loaded.image, instruction, strength=strength, seed=seed)
        edited = match_input_size(edited, loaded.image.size)
        edit_done = time.perf_counter()

        # 6. Write the output, the comparison and the adapter
        metadata = {
            "instruction": instruction,
            "seed": seed,
            "strength": strength,
            "model": pipe.model_name,
            "hywu_version": _common.hywu_version(),
        }
        imageio.save_image(edited, output, metadata=metadata, quality=quality, source=loaded, overwrite=overwrite)
        if compare_path is not None:
            comparison = imageio.make_comparison(
                loaded.image, edited, max_width=imageio.MAX_DIMENSION[imageio.output_format(compare_path)]
            )
            imageio.save_image(
                comparison, compare_path, metadata=metadata, quality=quality, source=loaded, overwrite=overwrite
            )
        lora_path = None
        if save_lora is not None:
            _common.create_output_dir(save_lora)
            lora_path = Path(pipe.save_lora(loaded.image, instruction, save_lora, strength=strength))
            if reading.followed_by:
                reporter.warning(
                    f"the adapter in {lora_path} holds only the first of the {len(reading.edits())} edits that "
                    f"{instruction!r} requests; run --save-lora once per edit to get the others"
                )
            _common.apply_default_file_mode(
                [lora_path / name for name in ADAPTER_FILES if (lora_path / name).is_file()]
            )
        finished = time.perf_counter()

        # 7. Report
        width, height = edited.size
        lines = [f"wrote {output} ({width}x{height}, {finished - started:.1f} s on {pipe.device})"]
        if compare_path is not None:
            lines.append(f"wrote {compare_path}")
        if lora_path is not None:
            lines.append(f"wrote adapter {lora_path}")
        reporter.result(
            "\n".join(lines),
            {
                "status": "ok",
                "input": str(image),
                "output": str(output),
                "compare": str(compare_path) if compare_path else None,
                "lora": str(lora_path) if lora_path else None,
                "instruction": instruction,
                "seed": seed,
                "strength": strength,
                "model": pipe.model_name,
                "model_dir": str(pipe.model_dir),
                "device": pipe.device,
                "dtype": pipe.dtype,
                "size": [width, height],
                "in_scope": bool(scope.in_scope),
                "scope_score": float(scope.score),
                "reading": _common.reading_record(reading, literal),
                "seconds": {
                    "model_load": round(model_loaded - started, 3),
                    "edit": round(edit_done - model_loaded, 3),
                    "total": round(finished - started, 3),
                },
            },
        )


def default_output_path(image: Path) -> Path:
    """Return `<stem>_edited<suffix>` next to `image`, keeping its extension when hywu can write it."""
    from hywu_cli.imageio import CANONICAL_SUFFIX, SAVE_FORMATS, sniff_format

    suffix = image.suffix
    if suffix.lower() not in SAVE_FORMATS:
        try:
            detected = sniff_format(image)
        except OSError:
            detected = None
        suffix = CANONICAL_SUFFIX.get(detected or "PNG", ".png")
    return image.with_name(f"{image.stem}_edited{suffix}")


def check_lora_dir(folder: Path, *, overwrite: bool) -> Path:
    """Check that the --save-lora folder can take the adapter, without creating it.

    Raises:
        typer.BadParameter: `folder` is a file.
        OutputPathError: an adapter is already in it and `overwrite` is False, or the folder cannot be written.
    """
    if folder.exists() and not folder.is_dir():
        raise typer.BadParameter(f"{str(folder)!r} is a file; give a folder for the adapter", param_hint="--save-lora")
    existing = [name for name in ADAPTER_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise OutputPathError(f"{folder} already contains an adapter ({existing[0]}); pass --overwrite to replace it")
    return _common.check_output_dir(folder)


def match_input_size(edited: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Return the edited image in RGB at the input's size, resizing (and logging) if the pipeline changed it."""
    from PIL import Image

    if edited.mode != "RGB":
        edited = edited.convert("RGB")
    if edited.size != size:
        logger.warning("pipeline returned %dx%d for a %dx%d input; resizing to the input size", *edited.size, *size)
        edited = edited.resize(size, Image.Resampling.LANCZOS)
    return edited
