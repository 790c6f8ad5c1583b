"""Measure a trained model on held-out photos and phrasings, and draw the before/after gallery.

    python -m hywu_cli.report --model weights/hywu-lite --photos data/photos

Writes `<model>/metrics.json` and `<model>/metrics.md` (per-family PSNR and SSIM of the bare base editor and of
the base with generated LoRA updates, on held-out phrasings and on training phrasings) and, with `--gallery`, a
gallery image of the example photos.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from hywu_cli.edits import EDIT_FAMILIES, PRETRAINING_FAMILIES
from hywu_cli.evaluation import EvaluationResult, evaluate, load_photos, markdown_table
from hywu_cli.photos import list_photos
from hywu_cli.phrasings import FAMILY_PHRASINGS
from hywu_cli.pipeline import HywuPipeline, load_pipeline


logger = logging.getLogger(__name__)

GALLERY_FAMILIES = (
    "snowy",
    "rainy",
    "foggy",
    "night",
    "golden_hour",
    "autumn",
    "black_and_white",
    "sepia",
    "vintage_film",
    "pencil_sketch",
    "cartoon",
    "invert",
    "warmer",
    "vivid",
)


def edit_function(pipe: HywuPipeline, use_lora: bool):
    def run(image: torch.Tensor, instruction: str, seed: int) -> torch.Tensor:
        return pipe.edit_tensors([image], [instruction], seeds=[seed], use_lora=use_lora)[0]

    return run


def measure(pipe: HywuPipeline, photos: list[torch.Tensor], train_phrasings: int) -> dict[str, EvaluationResult]:
    """Score the bare base and the generated updates on held-out phrasings, and the updates on training phrasings."""
    return {
        "base": evaluate(edit_function(pipe, use_lora=False), photos, split="eval"),
        "hywu": evaluate(edit_function(pipe, use_lora=True), photos, split="eval"),
        "hywu_train_phrasings": evaluate(
            edit_function(pipe, use_lora=True), photos, split="train", max_phrasings=train_phrasings
        ),
    }


def summarize(results: dict[str, EvaluationResult]) -> dict:
    hywu, train, base = results["hywu"], results["hywu_train_phrasings"], results["base"]
    deterministic = [name for name in hywu.families if not EDIT_FAMILIES[name].stochastic]
    unseen = [name for name in hywu.families if name not in PRETRAINING_FAMILIES]
    return {
        "mean_psnr_heldout_phrasings": round(hywu.mean_psnr, 3),
        "mean_psnr_training_phrasings": round(train.mean_psnr, 3),
        "heldout_to_training_ratio": round(hywu.mean_psnr / train.mean_psnr, 4),
        "min_deterministic_family_psnr": round(min(hywu.families[name].psnr for name in deterministic), 3),
        "worst_deterministic_family": min(deterministic, key=lambda name: hywu.families[name].psnr),
        "base_mean_psnr": round(base.mean_psnr, 3),
        "unseen_families_where_hywu_beats_base": sum(
            hywu.families[name].psnr > base.families[name].psnr for name in unseen
        ),
        "unseen_families": len(unseen),
    }


def draw_gallery(pipe: HywuPipeline, photo_paths: list[Path], out: Path, height: int = 160) -> None:
    """Draw one row per photo: the original, then one edit per family in `GALLERY_FAMILIES`, labelled."""
    rows = []
    for path in photo_paths:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        # Centre-crop to 4:3 so that every cell has the same size.
        target_width = round(image.height * 4 / 3)
        if image.width > target_width:
            left = (image.width - target_width) // 2
            image = image.crop((left, 0, left + target_width, image.height))
        image = image.resize((round(image.width * height / image.height), height), Image.Resampling.LANCZOS)
        instructions = [FAMILY_PHRASINGS[family].eval[0].text for family in GALLERY_FAMILIES]
        edited = pipe.edit_batch([image] * len(instructions), instructions, seeds=[1] * len(instructions))
        rows.append([("original", image)] + list(zip(instructions, edited)))

    label_height = 18
    columns = len(rows[0])
    cell_width = max(tile.width for row in rows for _, tile in row)
    canvas = Image.new("RGB", (columns * cell_width, len(rows) * (height + label_height)), "white")
    draw = ImageDraw.Draw(canvas)
    for row_index, row in enumerate(rows):
        top = row_index * (height + label_height)
        for column, (label, tile) in enumerate(row):
            left = column * cell_width
            canvas.paste(tile, (left, top + label_height))
            draw.text((left + 4, top + 3), label[:36], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, quality=88)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m hywu_cli.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="weights/hywu-lite")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"), help="held-out photos are read from here")
    parser.add_argument("--train-phrasings", type=int, default=6, help="training phrasings per family to score")
    parser.add_argument("--gallery", type=Path, default=None, help="write the example gallery to this file")
    parser.add_argument("--examples", type=Path, default=Path("examples"))
    parser.add_argument(
        "--no-metrics", action="store_true", help="only draw the gallery (`hywu eval` gives the full comparison)"
    )
    args = parser.parse_args(argv)

    pipe = load_pipeline(args.model, device="cpu")
    if args.gallery:
        photos = sorted(path for path in args.examples.glob("*.jpg") if path.resolve() != args.gallery.resolve())
        draw_gallery(pipe, photos, args.gallery)
    if args.no_metrics:
        return

    started = time.time()
    photos = load_photos(list_photos(args.photos, "heldout"))
    results = measure(pipe, photos, args.train_phrasings)
    summary = summarize(results)
    summary["photos"] = len(photos)
    summary["seconds"] = round(time.time() - started, 1)

    model_dir = Path(args.model)
    payload = {"summary": summary, **{name: result.to_dict() for name, result in results.items()}}
    (model_dir / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown_table({"base": results["base"], "hywu": results["hywu"]})
    (model_dir / "metrics.md").write_text(table + "\n")
    logger.info("summary: %s", summary)
    print(table)


if __name__ == "__main__":
    main()
