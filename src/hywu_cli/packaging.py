"""Assemble a trained model folder: components, out-of-scope calibration and manifest.

    python -m hywu_cli.packaging --work runs/hywu-lite --out weights/hywu-lite
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch

from hywu_cli import __version__
from hywu_cli.condition import TextEncoder
from hywu_cli.editor import LORA_TARGET_PATTERNS
from hywu_cli.models import build_manifest
from hywu_cli.phrasings import FAMILY_PHRASINGS, OUT_OF_SCOPE_CALIBRATION, OUT_OF_SCOPE_TEST, eval_phrasings, training_phrasings


logger = logging.getLogger(__name__)

# The lowest share of held-out in-scope phrasings that must pass the out-of-scope check.
MIN_IN_SCOPE_PASS_RATE = 0.95

LICENCES = {
    "editor": "Apache-2.0; trained by the hywu authors on the photos listed in README.md",
    "generator": "Apache-2.0; trained by the hywu authors",
    "condition_encoder": "Apache-2.0; trained by the hywu authors",
    "text_encoder": "Apache-2.0; sentence-transformers/all-MiniLM-L6-v2 converted to float16 (see text_encoder/NOTICE)",
}


def _best_similarity(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return (embeddings @ reference.T).max(dim=1).values


def calibrate_scope(text_encoder: TextEncoder, out: Path) -> dict:
    """Write scope.safetensors and pick the similarity threshold of the out-of-scope check.

    The threshold is the highest value at which at least `MIN_IN_SCOPE_PASS_RATE` of the held-out phrasings still
    pass, checked against `OUT_OF_SCOPE_CALIBRATION`. The reported rates use the held-out phrasings and the
    separate `OUT_OF_SCOPE_TEST` list.
    """
    from safetensors.torch import save_file

    families = list(FAMILY_PHRASINGS)
    train = training_phrasings()
    reference = text_encoder.encode([p.text for _, p in train]).sentence_embeddings.float()
    family_index = torch.tensor([families.index(family) for family, _ in train], dtype=torch.int32)
    save_file({"embeddings": reference.contiguous(), "family_index": family_index}, str(out / "scope.safetensors"))

    held_out = _best_similarity(text_encoder.encode([p.text for _, p in eval_phrasings()]).sentence_embeddings, reference)
    calibration = _best_similarity(text_encoder.encode(list(OUT_OF_SCOPE_CALIBRATION)).sentence_embeddings, reference)
    test = _best_similarity(text_encoder.encode(list(OUT_OF_SCOPE_TEST)).sentence_embeddings, reference)

    # Highest threshold that keeps the in-scope pass rate; ties and rounding go to the in-scope side.
    sorted_scores = torch.sort(held_out).values
    allowed_failures = int((1 - MIN_IN_SCOPE_PASS_RATE) * len(sorted_scores))
    threshold = float(sorted_scores[allowed_failures]) - 1e-4
    report = {
        "threshold": round(threshold, 4),
        "in_scope_pass_rate": float((held_out >= threshold).float().mean()),
        "out_of_scope_calibration_flag_rate": float((calibration < threshold).float().mean()),
        "out_of_scope_test_flag_rate": float((test < threshold).float().mean()),
        "held_out_phrasings": len(held_out),
        "out_of_scope_test_instructions": len(test),
    }
    logger.info("scope calibration: %s", report)
    return report


def export_model(work: Path, out: Path, name: str = "hywu-lite") -> dict:
    """Copy trained components from `work` into `out`, calibrate the scope check and write manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    sources = {
        "editor": work / "base" / "final",
        "generator": work / "generator" / "final" / "generator",
        "condition_encoder": work / "generator" / "final" / "condition_encoder",
    }
    for component, source in sources.items():
        if not (source / "config.json").is_file():
            raise SystemExit(f"missing trained component {component} at {source}; run `python -m hywu_cli.training` first")
        shutil.rmtree(out / component, ignore_errors=True)
        shutil.copytree(source, out / component)

    text_encoder = TextEncoder(out / "text_encoder")
    scope = calibrate_scope(text_encoder, out)
    (out / "scope_report.json").write_text(json.dumps(scope, indent=2) + "\n")
    components = {
        "editor": "editor",
        "generator": "generator",
        "condition_encoder": "condition_encoder",
        "text_encoder": "text_encoder",
        "lora_target_patterns": LORA_TARGET_PATTERNS,
        "scope": {"file": "scope.safetensors", "threshold": scope["threshold"]},
    }
    return build_manifest(out, name, __version__, components, LICENCES)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m hywu_cli.packaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/hywu-lite"))
    parser.add_argument("--out", type=Path, default=Path("weights/hywu-lite"))
    args = parser.parse_args(argv)
    manifest = export_model(args.work, args.out)
    logger.info("wrote %s with %d files", args.out / "manifest.json", len(manifest["files"]))


if __name__ == "__main__":
    main()
