"""Compare HY-WU's generated updates with the base editor alone and with two static baselines (`hywu eval`).

Methods, each scored by `hywu_cli.evaluation.evaluate` on the same photos, phrasings and seeds:
- `base`: the frozen base editor alone;
- `sft`: a copy of the base with every weight fine-tuned on all families (static SFT);
- `static_lora`: the base plus one LoRA update shared by every sample, same targets and rank as the generator;
- `hywu`: the base plus the LoRA update generated for each photo and instruction.
The baselines come from `python -m hywu_cli.training` (stages `sft` and `static_lora`) under its `--work` folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hywu_cli.edits import CONFLICTING_PAIRS, EDIT_FAMILIES, PRETRAINING_FAMILIES
from hywu_cli.errors import HywuError
from hywu_cli.evaluation import EditFunction, EvaluationResult, evaluate


logger = logging.getLogger(__name__)

METHODS: dict[str, str] = {
    "base": "base editor alone",
    "sft": "static SFT: the base fine-tuned on all families",
    "static_lora": "static LoRA: one shared update",
    "hywu": "HY-WU: an update generated per photo and instruction",
}

# A pretraining family counts as kept when the generated update loses less than this against the bare base.
FORGETTING_TOLERANCE_DB = 0.1


def baseline_files(folder: Path | None) -> dict[str, Path]:
    """Return the trained baselines found under a training `--work` folder, by method name."""
    if folder is None:
        return {}
    candidates = {
        "sft": folder / "sft" / "final",
        "static_lora": folder / "static_lora" / "final" / "static_lora.safetensors",
    }
    return {name: path for name, path in candidates.items() if path.exists()}


def method_functions(pipe, baselines: dict[str, Path]) -> dict[str, EditFunction]:
    """Return one edit function per available method, in the order of `METHODS`."""
    from hywu_cli.baselines import load_static_lora
    from hywu_cli.editor import LiteEditorNetwork
    from hywu_cli.network_io import load_network

    def pipeline_function(use_lora: bool, editor=None, static_lora=None) -> EditFunction:
        """Edit through `pipe.edit_tensors`, which reads instructions, skips unread ones and chains compound ones."""

        def run(image: torch.Tensor, instruction: str, seed: int) -> torch.Tensor:
            return pipe.edit_tensors(
                [image], [instruction], seeds=[seed], use_lora=use_lora, editor=editor, static_lora=static_lora
            )[0]

        return run

    functions = {"base": pipeline_function(False)}
    try:
        if "sft" in baselines:
            editor = load_network(LiteEditorNetwork, baselines["sft"], torch.float32).eval().requires_grad_(False)
            functions["sft"] = pipeline_function(False, editor=editor)
        if "static_lora" in baselines:
            static_lora = load_static_lora(baselines["static_lora"])
            functions["static_lora"] = pipeline_function(False, static_lora=static_lora)
    except Exception as error:
        raise HywuError(
            f"failed to load the baselines in {', '.join(str(path) for path in baselines.values())}: "
            f"{type(error).__name__}: {error}. Retrain them with `python -m hywu_cli.training --stages sft,static_lora`"
        ) from error
    functions["hywu"] = pipeline_function(True)
    return functions


def compare(
    pipe,
    photos: list[torch.Tensor],
    baselines: dict[str, Path],
    *,
    split: str = "eval",
    families: list[str] | None = None,
    max_phrasings: int | None = None,
    progress=None,
) -> dict[str, EvaluationResult]:
    """Score every available method; `progress(method)` is called before each one."""
    results = {}
    for name, function in method_functions(pipe, baselines).items():
        if progress is not None:
            progress(name)
        results[name] = evaluate(function, photos, families, split=split, max_phrasings=max_phrasings)
    return results


def summarize(results: dict[str, EvaluationResult]) -> dict:
    """Check HY-WU's claims on these results: mean PSNR, conflicting pairs, unseen families, no forgetting."""
    hywu, base = results["hywu"], results["base"]
    families = list(hywu.families)
    summary: dict = {"mean_psnr": {name: round(result.mean_psnr, 3) for name, result in results.items()}}

    pairs = {}
    for first, second in CONFLICTING_PAIRS:
        if first in hywu.families and second in hywu.families:
            pairs[f"{first}/{second}"] = {
                name: round((result.families[first].psnr + result.families[second].psnr) / 2, 3)
                for name, result in results.items()
            }
    summary["conflicting_pairs"] = pairs
    static = [name for name in ("sft", "static_lora") if name in results]
    summary["hywu_beats_static_on_mean"] = {name: hywu.mean_psnr > results[name].mean_psnr for name in static}
    summary["hywu_beats_static_on_every_pair"] = {
        name: bool(pairs) and all(pair["hywu"] > pair[name] for pair in pairs.values()) for name in static
    }

    unseen = [name for name in families if name not in PRETRAINING_FAMILIES]
    summary["unseen_families_where_hywu_beats_base"] = sorted(
        name for name in unseen if hywu.families[name].psnr > base.families[name].psnr
    )
    summary["unseen_families"] = len(unseen)
    summary["pretraining_family_change_db"] = {
        name: round(hywu.families[name].psnr - base.families[name].psnr, 3)
        for name in families
        if name in PRETRAINING_FAMILIES
    }
    summary["pretraining_families_forgotten"] = sorted(
        name for name, change in summary["pretraining_family_change_db"].items() if change < -FORGETTING_TOLERANCE_DB
    )
    deterministic = [name for name in families if not EDIT_FAMILIES[name].stochastic]
    if deterministic:
        worst = min(deterministic, key=lambda name: hywu.families[name].psnr)
        summary["worst_deterministic_family"] = {"family": worst, "psnr": round(hywu.families[worst].psnr, 3)}
    return summary


def markdown(results: dict[str, EvaluationResult], summary: dict) -> str:
    """Format the per-family table (PSNR / SSIM per method) and the claim checks as Markdown."""
    names = list(results)
    header = "| family | " + " | ".join(f"{name} PSNR / SSIM" for name in names) + " | HY-WU overlay | vs base |"
    lines = [header, "|" + "---|" * (len(names) + 3)]
    for family, hywu_score in results["hywu"].families.items():
        cells = [f"{results[name].families[family].psnr:.2f} / {results[name].families[family].ssim:.3f}" for name in names]
        overlay = ""
        if hywu_score.lowpass_psnr is not None:
            overlay = f"{hywu_score.lowpass_psnr:.2f} dB, texture {hywu_score.texture_ratio:.2f}"
        change = hywu_score.psnr - results["base"].families[family].psnr
        tag = "pretrained" if family in PRETRAINING_FAMILIES else "unseen"
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {overlay} | {change:+.2f} dB ({tag}) |")
    means = " | ".join(f"**{results[name].mean_psnr:.2f}**" for name in names)
    lines.append(f"| **mean** | {means} | | |")

    if summary["conflicting_pairs"]:
        lines += ["", "| conflicting pair | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for pair, scores in summary["conflicting_pairs"].items():
        lines.append(f"| {pair} | " + " | ".join(f"{scores[name]:.2f}" for name in names) + " |")

    beaten = summary["unseen_families_where_hywu_beats_base"]
    forgotten = summary["pretraining_families_forgotten"]
    lines += [
        "",
        f"- HY-WU beats the bare base on {len(beaten)} of {summary['unseen_families']} families the base never saw.",
        "- Pretraining families where HY-WU loses more than "
        f"{FORGETTING_TOLERANCE_DB} dB to the bare base: {', '.join(forgotten) if forgotten else 'none'}.",
    ]
    for name, wins in summary["hywu_beats_static_on_mean"].items():
        every_pair = summary["hywu_beats_static_on_every_pair"][name]
        lines.append(
            f"- HY-WU {'beats' if wins else 'does not beat'} {name} on mean PSNR, and "
            f"{'beats' if every_pair else 'does not beat'} it on every conflicting pair."
        )
    for name, ratio in summary.get("wording_ratio", {}).items():
        lines.append(
            f"- {name}: held-out phrasings {ratio['held_out_psnr']:.2f} dB, training phrasings of the same families "
            f"and grades {ratio['training_psnr_grade_matched']:.2f} dB, ratio {ratio['ratio']:.3f}."
        )
    return "\n".join(lines)
