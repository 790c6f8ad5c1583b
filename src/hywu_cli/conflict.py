"""Measure how much conflicting edits pull one shared LoRA update apart: gradient cosines per pair of families.

    python -m hywu_cli.conflict --model weights/hywu-lite --photos data/photos \
        --static-lora runs/hywu-lite/static_lora/final/static_lora.safetensors --out docs/conflict

For every family, the gradient of the editing loss with respect to one shared LoRA update (the static LoRA
baseline's factors, or a fresh PEFT-style initialisation) is computed on the same training crops. The cosine
similarity between two families' gradients measures whether one shared update can serve both: near -1 they pull it
in opposite directions, near 0 they are unrelated. Pairs are the conflicting pairs named in `hywu_cli.edits` and, for
contrast, pairs of unrelated families. Writes `<out>.json`, `<out>.md` and, when matplotlib is installed,
`<out>.png`.

The HY-WU report (arXiv 2603.07236) gives a mean cosine of about -0.30 between the gradients of its conflicting
editing tasks.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from hywu_cli.dataset import PhotoBank, PhrasingTable, sample_batch
from hywu_cli.edits import CONFLICTING_PAIRS, EDIT_FAMILIES


logger = logging.getLogger(__name__)

PAPER_CONFLICT_COSINE = -0.30

WITH_INSTRUCTION = "base editor reads each instruction"
NEUTRAL_TITLE = "base editor reads one neutral instruction"
NEUTRAL_INSTRUCTION = "edit the photo"

# Pairs of families whose edits have nothing to do with each other, as the reference the conflicts are read against.
UNRELATED_PAIRS: tuple[tuple[str, str], ...] = (
    ("brighter", "blur"),
    ("darker", "sharpen"),
    ("warmer", "vignette"),
    ("cooler", "more_contrast"),
    ("vivid", "blur"),
    ("muted", "vignette"),
    ("sharpen", "warmer"),
    ("less_contrast", "cooler"),
)


def family_gradients(
    editor, lora, text_encoder, bank, families, batches: int, batch_size: int, crop: int, seed: int, neutral=None
):
    """Return {family: flattened mean gradient} of the editing loss with respect to the shared LoRA factors.

    With `neutral` (a sentence embedding (1, text_dim)), the base editor reads that instead of each instruction,
    so the instruction cannot tell the edits apart and only the shared update can serve them.
    """
    from hywu_cli.injection import apply_generated_lora
    from hywu_cli.training import editing_loss, encode_phrasings

    table = PhrasingTable(families)
    encodings = encode_phrasings(text_encoder, table.texts)
    gradients = {family: torch.zeros(sum(p.numel() for p in lora.parameters())) for family in families}
    for batch_index in range(batches):
        for family in families:
            # The same crops and seeds for every family: only the instruction and its target differ.
            rng = random.Random(seed + batch_index)
            batch = sample_batch(bank, table, [family], batch_size, crop, rng, hand_written_share=1.0)
            text = encodings.index(batch.phrasing_ids)
            lora.zero_grad(set_to_none=True)
            embeddings = text.sentence_embeddings if neutral is None else neutral.expand(batch_size, -1)
            with apply_generated_lora(editor, lora(batch_size)):
                output = editor(batch.images, embeddings, batch.seeds, clamp=False)
            editing_loss(output, batch.targets).backward()
            gradients[family] += torch.cat([p.grad.flatten() for p in lora.parameters()]) / batches
    return gradients


def cosine_table(gradients: dict[str, torch.Tensor], pairs) -> dict[str, float]:
    return {
        f"{first}/{second}": round(F.cosine_similarity(gradients[first], gradients[second], dim=0).item(), 4)
        for first, second in pairs
    }


def summarize_pairs(gradients: dict[str, torch.Tensor]) -> dict:
    conflicting = cosine_table(gradients, CONFLICTING_PAIRS)
    unrelated = cosine_table(gradients, UNRELATED_PAIRS)
    return {
        "conflicting": conflicting,
        "unrelated": unrelated,
        "mean_conflicting": round(sum(conflicting.values()) / len(conflicting), 4),
        "mean_unrelated": round(sum(unrelated.values()) / len(unrelated), 4),
    }


def markdown_rows(name: str, result: dict) -> list[str]:
    rows = [f"| {pair} | conflicting | {value:+.3f} |" for pair, value in result["conflicting"].items()]
    rows += [f"| {pair} | unrelated | {value:+.3f} |" for pair, value in result["unrelated"].items()]
    rows += [
        f"| **mean** | conflicting | **{result['mean_conflicting']:+.3f}** |",
        f"| **mean** | unrelated | **{result['mean_unrelated']:+.3f}** |",
    ]
    return [f"### {name}", "", "| pair | kind | gradient cosine |", "|---|---|---|", *rows, ""]


def draw(results: dict[str, dict], path: Path) -> bool:
    """Draw a bar chart of both pair sets with the paper's reference line; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed; skipping %s (pip install matplotlib)", path)
        return False

    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.4), sharey=True, squeeze=False)
    for axis, (title, result) in zip(axes[0], results.items()):
        conflicting, unrelated = result["conflicting"], result["unrelated"]
        labels = list(conflicting) + list(unrelated)
        values = list(conflicting.values()) + list(unrelated.values())
        colours = ["#c0392b"] * len(conflicting) + ["#7f8c8d"] * len(unrelated)
        axis.bar(range(len(values)), values, color=colours)
        axis.axhline(PAPER_CONFLICT_COSINE, color="black", linestyle="--", linewidth=1)
        axis.text(len(values) - 0.5, PAPER_CONFLICT_COSINE - 0.07, "HY-WU report: -0.30", ha="right", fontsize=8)
        axis.axhline(0, color="black", linewidth=0.6)
        axis.set_xticks(range(len(values)), labels, rotation=45, ha="right", fontsize=7)
        axis.set_ylim(-1, 1)
        axis.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("cosine of shared-LoRA gradients")
    figure.suptitle("Gradient cosine on one shared LoRA update: conflicting pairs (red), unrelated pairs (grey)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m hywu_cli.conflict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="hywu-lite", help="model name or folder, looked up as `hywu --model` does")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"), help="training photos are read from here")
    parser.add_argument("--static-lora", type=Path, default=None, help="static LoRA factors; default: fresh init")
    parser.add_argument(
        "--out", type=Path, default=Path("docs/conflict"), help="writes OUT.json, OUT.md and OUT.png (default docs/conflict)"
    )
    parser.add_argument("--batches", type=int, default=8, help="batches averaged per family (default 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per batch (default 8)")
    parser.add_argument("--crop-size", type=int, default=192, help="side of the square crops, in pixels (default 192)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crops and the fresh LoRA (default 0)")
    args = parser.parse_args(argv)
    for option, value in (("--batches", args.batches), ("--batch-size", args.batch_size), ("--crop-size", args.crop_size)):
        if value < 1:
            parser.error(f"{option} must be at least 1, got {value}")

    from hywu_cli.errors import HywuError
    from hywu_cli.models import resolve_model_dir

    try:
        args.model = resolve_model_dir(args.model)
    except HywuError as error:
        parser.error(str(error))

    from hywu_cli.baselines import StaticLora, load_static_lora
    from hywu_cli.condition import TextEncoder
    from hywu_cli.photos import list_photos
    from hywu_cli.training import TrainConfig, load_frozen_editor

    torch.manual_seed(args.seed)
    editor, targets = load_frozen_editor(args.model / "editor", "cpu")
    rank = TrainConfig().rank
    lora = StaticLora(targets, rank, float(rank))
    if args.static_lora is not None:
        trained = load_static_lora(args.static_lora)
        for name, a, b in zip(lora.names, lora.lora_A, lora.lora_B):
            a.data.copy_(trained.lora_A[name][0])
            b.data.copy_(trained.lora_B[name][0])
    bank = PhotoBank(list_photos(args.photos, "train"))
    families = sorted({name for pair in CONFLICTING_PAIRS + UNRELATED_PAIRS for name in pair}, key=list(EDIT_FAMILIES).index)
    text_encoder = TextEncoder(args.model / "text_encoder")
    neutral = text_encoder.encode([NEUTRAL_INSTRUCTION]).sentence_embeddings
    results = {}
    for title, embedding in ((WITH_INSTRUCTION, None), (NEUTRAL_TITLE, neutral)):
        gradients = family_gradients(
            editor, lora, text_encoder, bank, families, args.batches, args.batch_size, args.crop_size, args.seed,
            embedding,
        )  # fmt: skip
        results[title] = summarize_pairs(gradients)

    payload = {
        "static_lora": str(args.static_lora) if args.static_lora else "fresh initialisation",
        "batches": args.batches,
        "batch_size": args.batch_size,
        "paper_mean_conflicting": PAPER_CONFLICT_COSINE,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [line for title, result in results.items() for line in markdown_rows(title, result)]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    draw(results, args.out.with_suffix(".png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
