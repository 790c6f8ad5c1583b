"""Assemble a trained model folder: components, out-of-scope calibration and manifest.

python -m hywu_cli.packaging --work runs/hywu-lite --out weights/hywu-lite
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from hywu_cli import __version__
from hywu_cli.condition import TextEncoder
from hywu_cli.editor import LORA_TARGET_PATTERNS
from hywu_cli.models import build_manifest
from hywu_cli.phrasings import (
    FAMILY_PHRASINGS,
    OUT_OF_SCOPE_CALIBRATION,
    OUT_OF_SCOPE_TEST,
    OUT_OF_SCOPE_TRAIN,
    eval_phrasings,
    training_phrasings,
)


logger = logging.getLogger(__name__)

# Share of `OUT_OF_SCOPE_CALIBRATION` that the out-of-scope check must flag; the threshold is the lowest logit
# that reaches it, so that as many in-scope phrasings as possible still pass.
CALIBRATION_FLAG_RATE = 0.95

# Composed training sentences per family (`hywu_cli.phrasing_grammar`) added to the in-scope examples.
SCOPE_COMPOSED_PER_FAMILY = 15

# An instruction whose sentence embedding has at least this cosine similarity to one training sentence is in
# scope whatever the classifier scores ("make it look like a cartoon" scores 0.92 but a low logit). At 0.75 no
# out-of-scope calibration or test instruction passes that would not pass anyway.
SIMILARITY_PASS = 0.75

LICENCES = {
    "editor": "Apache-2.0; trained by the hywu authors on the photos listed in README.md",
    "generator": "Apache-2.0; trained by the hywu authors",
    "condition_encoder": "Apache-2.0; trained by the hywu authors",
    "text_encoder": "Apache-2.0; sentence-transformers/all-MiniLM-L6-v2 converted to float16 (see text_encoder/NOTICE)",
    "instruction_reader": "Apache-2.0; copies of the upper two layers of all-MiniLM-L6-v2, one per member, fine-tuned by the hywu authors",
}


def fit_scope_classifier(
    positives: torch.Tensor, negatives: torch.Tensor, weight_decay: float = 1e-4, steps: int = 600
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit a logistic regression on sentence embeddings (in scope = 1); returns weight (dim,) and bias (1,).

    Full-batch Adam from zeros, so the result is deterministic. Classes are weighted to count equally.
    """
    features = torch.cat([positives, negatives]).float()
    labels = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
    sample_weight = torch.where(labels > 0, len(negatives) / len(positives), 1.0)
    weight = torch.zeros(features.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(steps):
        logits = features @ weight + bias
        loss = (
            F.binary_cross_entropy_with_logits(logits, labels, weight=sample_weight)
            + weight_decay * weight.square().sum()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return weight.detach(), bias.detach()


def calibrate_scope(text_encoder: TextEncoder, out: Path) -> dict:
    """Train the out-of-scope classifier, pick its threshold and write scope.safetensors.

    The classifier separates training phrasings (hand-written plus `SCOPE_COMPOSED_PER_FAMILY` composed ones per
    family) from `OUT_OF_SCOPE_TRAIN`. Its threshold is the lowest logit at which `CALIBRATION_FLAG_RATE` of
    `OUT_OF_SCOPE_CALIBRATION` is flagged. The reported rates come from lists used for neither: the held-out
    evaluation phrasings, the blind test phrasings and `OUT_OF_SCOPE_TEST`.
    """
    from safetensors.torch import save_file

    from hywu_cli.evaluation import phrasings_for
    from hywu_cli.phrasing_grammar import compose_phrasings

    def embed(texts) -> torch.Tensor:
        return text_encoder.encode(list(texts)).sentence_embeddings.float()

    families = list(FAMILY_PHRASINGS)
    train = training_phrasings()
    train += [(family, p) for family in families for p in compose_phrasings(family, SCOPE_COMPOSED_PER_FAMILY)]
    reference = embed(p.text for _, p in train)
    weight, bias = fit_scope_classifier(reference, embed(OUT_OF_SCOPE_TRAIN))

    calibration_embeddings = embed(OUT_OF_SCOPE_CALIBRATION)
    calibration = torch.sort(calibration_embeddings @ weight + bias).values
    index = min(len(calibration) - 1, math.ceil(CALIBRATION_FLAG_RATE * len(calibration)) - 1)
    threshold = float(calibration[index]) + 1e-4  # flagged means logit < threshold

    def passes(embeddings: torch.Tensor) -> torch.Tensor:
        """Apply the rule of `HywuPipeline.check_scope`: a high logit or a near-copy of a training sentence."""
        similarity = (embeddings @ reference.T).max(dim=1).values
        return (embeddings @ weight + bias >= threshold) | (similarity >= SIMILARITY_PASS)

    held_out = passes(embed(p.text for _, p in eval_phrasings()))
    blind = passes(embed(p.text for family in families for p in phrasings_for(family, "blind")))
    flagged_calibration = ~passes(calibration_embeddings)
    test = passes(embed(OUT_OF_SCOPE_TEST))
    family_index = torch.tensor([families.index(family) for family, _ in train], dtype=torch.int32)
    tensors = {"embeddings": reference.contiguous(), "family_index": family_index, "weight": weight, "bias": bias}
    save_file(tensors, str(out / "scope.safetensors"))
    report = {
        "threshold": round(threshold, 4),
        "similarity_threshold": SIMILARITY_PASS,
        "in_scope_pass_rate": round(float(held_out.float().mean()), 4),
        "blind_in_scope_pass_rate": round(float(blind.float().mean()), 4),
        "out_of_scope_calibration_flag_rate": round(float(flagged_calibration.float().mean()), 4),
        "out_of_scope_test_flag_rate": round(float((~test).float().mean()), 4),
        "held_out_phrasings": len(held_out),
        "out_of_scope_test_instructions": len(test),
    }
    logger.info("scope calibration: %s", report)
    return report


# Folder of each trained component inside a training --work folder.
COMPONENT_PATHS = {
    "editor": Path("base", "final"),
    "generator": Path("generator", "final", "generator"),
    "condition_encoder": Path("generator", "final", "condition_encoder"),
    "instruction_reader": Path("reader", "final"),
}


def component_sources(work: Path, init_from: Path | None = None) -> dict[str, Path]:
    """Return the folder of each component: in `work`, or in `init_from` where `work` has no config.json for it."""
    sources = {}
    for component, path in COMPONENT_PATHS.items():
        missing = not (work / path / "config.json").is_file()
        sources[component] = init_from / path if missing and init_from is not None else work / path
    return sources


def export_model(work: Path, out: Path, name: str = "hywu-lite", init_from: Path | None = None) -> dict:
    """Copy trained components from `work` into `out`, calibrate the scope check and write manifest.json.

    A component that `work` lacks is taken from `init_from`, the run that `work` continued (training's
    `--init-from`), which contains the base editor and the instruction reader.
    """
    out.mkdir(parents=True, exist_ok=True)
    for component, source in component_sources(work, init_from).items():
        if not (source / "config.json").is_file():
            raise SystemExit(
                f"missing trained component {component} at {source}; run `python -m hywu_cli.training` first"
            )
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
        "instruction_reader": "instruction_reader",
        "lora_target_patterns": LORA_TARGET_PATTERNS,
        "scope": {
            "file": "scope.safetensors",
            "threshold": scope["threshold"],
            "similarity_threshold": scope["similarity_threshold"],
        },
    }
    return build_manifest(out, name, __version__, components, LICENCES)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m hywu_cli.packaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/hywu-lite"))
    parser.add_argument("--out", type=Path, default=Path("weights/hywu-lite"))
    parser.add_argument(
        "--init-from", type=Path, default=None, help="the run that --work continued; supplies components --work lacks"
    )
    args = parser.parse_args(argv)
    manifest = export_model(args.work, args.out, init_from=args.init_from)
    logger.info("wrote %s with %d files", args.out / "manifest.json", len(manifest["files"]))


if __name__ == "__main__":
    main()
