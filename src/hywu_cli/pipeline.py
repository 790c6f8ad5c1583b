"""The editing pipeline: instruction + photo -> generated LoRA -> frozen base editor -> edited photo.

    from hywu_cli import load_pipeline
    pipe = load_pipeline("hywu-lite")
    edited = pipe.edit(image, "make it snowy")

A model folder contains `manifest.json` (files with sha256, component folders, LoRA target patterns, the out-of-scope
threshold), `editor/`, `generator/`, `condition_encoder/`, optionally `instruction_reader/` (diffusers `ModelMixin` folders),
`text_encoder/` (a transformers BERT folder) and `scope.safetensors` (sentence embeddings of the training
phrasings). With a reader, the generator and the editor are conditioned on the canonical phrasing of the family
and grade the reader recognises (see `hywu_cli.instruction_reader`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hywu_cli.condition import ConditionEncoderNetwork, EncodedInstructions, TextEncoder
from hywu_cli.editor import EditOperators, LiteEditorNetwork
from hywu_cli.errors import HywuError, HywuWarning, ModelFilesError
from hywu_cli.generator import GeneratedLora, ParameterGeneratorNetwork
from hywu_cli.injection import apply_generated_lora, inject_generated_lora, save_peft_adapter
from hywu_cli.instruction_reader import READER_MAX_TOKENS, InstructionReading, InstructionReaderNetwork
from hywu_cli.models import (
    check_model_dir,
    check_safetensors_file,
    download_hint,
    load_manifest,
    looks_like_path,
    resolve_model_dir,
)
from hywu_cli.network_io import load_network
from hywu_cli.phrasings import FAMILY_PHRASINGS
from hywu_cli.rendering import render_uint8
from hywu_cli.text_encoder import MAX_INSTRUCTION_TOKENS


logger = logging.getLogger(__name__)

# The pipeline clears its cache of readings before new instructions would take it past this many entries (one batch
# of more new instructions is cached whole).
READING_CACHE_SIZE = 4096

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class ScopeReport:
    """How close an instruction is to the edits the model learned.

    `score` is the logit of a linear classifier over the instruction's sentence embedding (trained on the training
    phrasings against out-of-scope requests); `closest` lists up to three family titles with their highest cosine
    similarity to any of that family's training phrasings. An instruction is in scope when the score reaches
    `threshold` or its closest similarity reaches the model's similarity threshold.
    """

    in_scope: bool
    score: float
    threshold: float
    closest: list[tuple[str, float]]


def select_device(requested: str = "auto") -> str:
    """Resolve `auto` to cuda, then mps, then cpu; reject devices this machine does not have."""
    if requested not in DEVICES:
        raise HywuError(f"invalid device {requested!r}; expected one of {', '.join(DEVICES)}")
    mps_available = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if mps_available else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise HywuError("device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    if requested == "mps" and not mps_available:
        raise HywuError("device mps was requested but Metal is not available; use --device cpu or auto")
    return requested


def select_dtype(requested: str, device: str) -> str:
    """Resolve `auto` (float16 on cuda, float32 elsewhere); half types on CPU fall back to float32 with a warning."""
    if requested == "auto":
        return "float16" if device == "cuda" else "float32"
    if requested not in DTYPES:
        raise HywuError(f"invalid dtype {requested!r}; expected auto, {', '.join(DTYPES)}")
    if device == "cpu" and requested != "float32":
        warnings.warn(f"{requested} is slow or unsupported on CPU; using float32 instead", HywuWarning, stacklevel=2)
        return "float32"
    return requested


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """Convert an RGB PIL image to float (1, 3, height, width) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Convert (3, height, width) or (1, 3, height, width) in [0, 1] to an RGB PIL image, rounding to 8 bits."""
    if image.ndim == 4:
        image = image[0]
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


MAX_STRENGTH = 4.0


def check_strength(strength: float) -> None:
    """Reject strengths outside [0, MAX_STRENGTH]: far larger updates push the colour table to black or white."""
    if not (0.0 <= strength <= MAX_STRENGTH):
        raise HywuError(f"invalid strength {strength}; expected a number from 0 to {MAX_STRENGTH:g} (1 = as trained)")


def prepare_image(image: Image.Image | str | Path) -> Image.Image:
    """Return an upright 8-bit RGB image from a PIL image or a file path.

    Files are read by `hywu_cli.imageio.load_image`. PIL images are turned upright by their EXIF orientation and
    converted with `hywu_cli.imageio.convert_to_rgb` (transparency flattened onto white, 16-bit scaled to 8-bit).
    """
    from hywu_cli.imageio import convert_to_rgb, load_image, upright

    if isinstance(image, (str, Path)):
        return load_image(image).image
    if not isinstance(image, Image.Image):
        raise HywuError(f"expected a PIL image or a file path, got {type(image).__name__}")
    return convert_to_rgb(upright(image))


class HywuPipeline:
    """Loads a model folder once and edits photos with instance-specific generated LoRA updates."""

    def __init__(
        self, model_dir: Path, device: str = "cpu", dtype: str = "float32", requested_name: str | None = None
    ) -> None:
        self.model_dir = Path(model_dir)
        # The name the model was looked up by, or None for a folder path; it picks the download hint in errors.
        self.requested_name = requested_name
        self.manifest = load_manifest(self.model_dir)
        self.model_name = str(self.manifest.get("name", self.model_dir.name))
        self.version = str(self.manifest.get("version", "unknown"))
        self.device = device
        self.dtype = dtype
        # True conditions the model on the instruction's own words even where the instruction reader is sure.
        self.literal = False
        # Readings by instruction, so `hywu edit` reports a reading and then edits with it without reading twice.
        self._readings: dict[str, InstructionReading] = {}
        self._check_files()

        components = self.manifest["components"]
        torch_dtype = DTYPES[dtype]
        self.text_encoder = TextEncoder(self.model_dir / components["text_encoder"], device=device)
        self.editor = load_network(LiteEditorNetwork, self.model_dir / components["editor"], torch_dtype)
        inject_generated_lora(self.editor, list(components["lora_target_patterns"]))
        self.condition_encoder = load_network(
            ConditionEncoderNetwork, self.model_dir / components["condition_encoder"], torch_dtype
        )
        self.generator = load_network(ParameterGeneratorNetwork, self.model_dir / components["generator"], torch_dtype)
        self.reader = None
        if components.get("instruction_reader"):
            self.reader = load_network(InstructionReaderNetwork, self.model_dir / components["instruction_reader"])
            self.reader.to(device).eval().requires_grad_(False)
        for module in (self.editor, self.condition_encoder, self.generator):
            module.to(device).eval().requires_grad_(False)

        scope = components.get("scope")
        self._scope_embeddings = None
        if scope:
            from safetensors.torch import load_file

            tensors = load_file(str(self.model_dir / scope["file"]))
            self._scope_embeddings = tensors["embeddings"].float()
            self._scope_weight = tensors["weight"].float()
            self._scope_bias = tensors["bias"].float()
            self._scope_families = [list(FAMILY_PHRASINGS)[int(i)] for i in tensors["family_index"].tolist()]
            self.scope_threshold = float(scope["threshold"])
            similarity = scope.get("similarity_threshold")
            self.scope_similarity_threshold = float(similarity) if similarity is not None else None

    def _check_files(self) -> None:
        check_model_dir(self.model_dir, check_hashes=False, name=self.requested_name)
        for path in sorted(self.model_dir.rglob("*.safetensors")):
            check_safetensors_file(path, model_name=self.requested_name)

    # -- conditioning ------------------------------------------------------------------------------------------

    def encode_instructions(
        self, instructions: list[str], max_tokens: int = MAX_INSTRUCTION_TOKENS
    ) -> EncodedInstructions:
        cleaned = [" ".join(text.split()) for text in instructions]
        if any(not text for text in cleaned):
            raise HywuError('instruction is empty; describe the edit, e.g. "make it snowy"')
        return self.text_encoder.encode(cleaned, max_tokens)

    def read_instructions(self, instructions: list[str]) -> list[InstructionReading]:
        """Return the family and grade that each instruction requests, and the text the model is conditioned on.

        Without a reader in the model folder, or with `literal` set, every instruction is used as written.
        """
        cleaned = [" ".join(text.split()) for text in instructions]
        readings = [InstructionReading(text, text, None, None, 0.0) for text in cleaned]
        if self.reader is None or self.literal:
            return readings

        # Empty instructions stay as written, so `encode_instructions` reports them.
        new = list(dict.fromkeys(text for text in cleaned if text and text not in self._readings))
        if new:
            if len(self._readings) + len(new) > READING_CACHE_SIZE:
                self._readings.clear()
            self._readings.update(zip(new, self.reader.read(self.text_encoder, new), strict=True))
        return [self._readings.get(text, reading) for text, reading in zip(cleaned, readings)]

    def encode_for_editing(self, instructions: list[str]) -> EncodedInstructions:
        """Encode the texts the instruction reader chose (see `read_instructions`) for the generator and editor,
        with the reading itself for a condition encoder that takes it."""
        return self.encode_readings(self.read_instructions(instructions))

    def encode_readings(self, readings: list[InstructionReading]) -> EncodedInstructions:
        """Encode the texts of `read_instructions` results, with the readings if the condition encoder takes them."""
        encoded = self.encode_instructions([reading.text for reading in readings])
        if not self.condition_encoder.reads_edits:
            return encoded
        ids = self.condition_encoder.reading_ids_for([(reading.family, reading.grade) for reading in readings])
        return encoded.with_reading(ids.to(encoded.token_states.device))

    @torch.no_grad()
    def generate_lora(self, thumbnails: torch.Tensor, encoded: EncodedInstructions) -> GeneratedLora:
        """Generate per-sample LoRA factors from thumbnails (batch, 3, size, size) and encoded instructions."""
        dtype = DTYPES[self.dtype]
        encoded = EncodedInstructions(
            encoded.token_states.to(dtype),
            encoded.token_mask,
            encoded.sentence_embeddings.to(dtype),
            encoded.reading_ids,
        )
        cond, cond_mask = self.condition_encoder(thumbnails.to(dtype), encoded)
        return self.generator(cond, cond_mask)

    def check_scope(self, instruction: str) -> ScopeReport:
        """Compare an instruction with the training phrasings; see `ScopeReport`."""
        if self._scope_embeddings is None:
            return ScopeReport(True, 1.0, 0.0, [])
        # As many word pieces as the reader reads, so a long request gets no warning that its end is ignored.
        embedding = self.encode_instructions([instruction], READER_MAX_TOKENS).sentence_embeddings.float().cpu()[0]
        similarity = self._scope_embeddings @ embedding  # (phrasings,)
        best: dict[str, float] = {}
        for family, value in zip(self._scope_families, similarity.tolist()):
            best[family] = max(best.get(family, -1.0), value)
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[:3]
        closest = [(FAMILY_PHRASINGS[family].title, round(value, 3)) for family, value in ranked]
        score = float(embedding @ self._scope_weight + self._scope_bias)
        near_copy = self.scope_similarity_threshold is not None and ranked[0][1] >= self.scope_similarity_threshold
        return ScopeReport(score >= self.scope_threshold or near_copy, score, self.scope_threshold, closest)

    # -- editing -----------------------------------------------------------------------------------------------

    def _check_batch(
        self, images: list, instructions: list[str], strength: float, seeds: list[int] | None
    ) -> list[int]:
        if len(images) != len(instructions):
            raise HywuError(f"got {len(images)} images but {len(instructions)} instructions")
        check_strength(strength)
        return list(seeds) if seeds is not None else [0] * len(images)

    def _predict_operators(
        self,
        thumbnails: torch.Tensor,
        readings: list[InstructionReading],
        strength: float,
        use_lora: bool,
        editor: LiteEditorNetwork | None = None,
        static_lora: GeneratedLora | None = None,
    ) -> EditOperators:
        """Generate this batch's LoRA updates for `readings` and predict operators with them injected.

        `editor` replaces the base editor, and a batch-1 `static_lora` is injected for every photo instead of the
        generated updates (see `edit_tensors`).
        """
        editor = self.editor if editor is None else editor
        encoded = self.encode_readings(readings)
        if static_lora is not None:
            lora = static_lora.repeated(len(readings))
        else:
            lora = self.generate_lora(thumbnails, encoded).scaled(strength) if use_lora else None
        with apply_generated_lora(editor, lora):
            return editor.predict_operators(thumbnails, encoded.sentence_embeddings.to(thumbnails.dtype))

    @staticmethod
    def _edit_steps(readings: list[InstructionReading]) -> list[list[tuple[int, InstructionReading]]]:
        """Group the edits of every reading by position: step k lists (photo index, k-th edit of that photo).

        Most instructions request one edit; "brighter and warmer" requests two, applied one after the other. A
        reading that matches no edit (`no_edit`) gets no step, so its photo stays unchanged.
        """
        steps: list[list[tuple[int, InstructionReading]]] = []
        for index, reading in enumerate(readings):
            edits = [edit for edit in reading.edits() if not edit.no_edit]
            for step, edit in enumerate(edits):
                if step == len(steps):
                    steps.append([])
                steps[step].append((index, edit))
        return steps

    @torch.no_grad()
    def edit_tensors(
        self,
        images: list[torch.Tensor],
        instructions: list[str],
        *,
        strength: float = 1.0,
        seeds: list[int] | None = None,
        use_lora: bool = True,
        editor: LiteEditorNetwork | None = None,
        static_lora: GeneratedLora | None = None,
    ) -> list[torch.Tensor]:
        """Edit float images, each (1, 3, height, width) in [0, 1] and of any size; returns tensors on the CPU.

        `strength` scales the generated update (0 runs the bare base editor); `use_lora=False` skips the generator.
        This is the float reference path that evaluation uses. For the baselines of `hywu eval`, `editor` replaces
        the base editor (static SFT) and `static_lora` injects one shared update instead of generated ones
        (static LoRA); the instructions are read as for the model itself.
        """
        seeds = self._check_batch(images, instructions, strength, seeds)
        dtype = DTYPES[self.dtype]
        editor = self.editor if editor is None else editor
        results = [image.to(self.device, dtype) for image in images]
        readings = self.read_instructions(instructions)

        for step in self._edit_steps(readings):
            # 1. Make the thumbnails that the generator and the editor look at.
            thumbnails = torch.cat([editor.make_thumbnail(results[index]) for index, _ in step])

            # 2. Predict operators with the generated (or static) updates injected.
            edits = [edit for _, edit in step]
            operators = self._predict_operators(thumbnails, edits, strength, use_lora, editor, static_lora)

            # 3. Render each photo at its own size.
            for row, (index, _) in enumerate(step):
                results[index] = editor.render(results[index], operators.select(row), [seeds[index]])
        return [image.float().cpu() for image in results]

    @torch.no_grad()
    def edit_batch(
        self,
        images: list[Image.Image | str | Path],
        instructions: list[str],
        *,
        strength: float = 1.0,
        seeds: list[int] | None = None,
    ) -> list[Image.Image]:
        """Edit PIL images or image files; each result has the size of its upright input.

        Inputs go through `prepare_image`. Photos are rendered straight from 8-bit arrays by
        `hywu_cli.rendering` in strips over threads.
        """
        from hywu_cli.imageio import array_to_image, image_to_array

        seeds = self._check_batch(images, instructions, strength, seeds)
        dtype = DTYPES[self.dtype]
        # Each photo is a PIL image until its first edit and a (height, width, 3) uint8 array after it.
        photos: list[Image.Image | np.ndarray] = [prepare_image(image) for image in images]
        readings = self.read_instructions(instructions)

        size = self.editor.hparams.thumbnail_size
        for step in self._edit_steps(readings):
            # 1. Thumbnails with PIL's antialiased bilinear filter, which matches the torch resize used in training
            #    to within one 8-bit level and is faster on large photos.
            thumbnails = torch.cat(
                [
                    pil_to_tensor(
                        self._as_pil(photos[index]).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
                    )
                    for index, _ in step
                ]
            ).to(self.device, dtype)

            # 2. Predict operators with the generated updates injected.
            operators = self._predict_operators(thumbnails, [edit for _, edit in step], strength, use_lora=True)

            # 3. Render each photo at its own size.
            for row, (index, _) in enumerate(step):
                operator = operators.select(row).to("cpu", torch.float32)
                photo = photos[index]
                pixels = image_to_array(photo) if isinstance(photo, Image.Image) else photo
                photos[index] = render_uint8(pixels, operator, seeds[index])
        # An unedited photo is returned as a copy, so the caller's image is never the result.
        return [array_to_image(photo) if isinstance(photo, np.ndarray) else photo.copy() for photo in photos]

    @staticmethod
    def _as_pil(photo: Image.Image | np.ndarray) -> Image.Image:
        """Return a PIL image as it is, or a (height, width, 3) uint8 array converted by `array_to_image`."""
        from hywu_cli.imageio import array_to_image

        return photo if isinstance(photo, Image.Image) else array_to_image(photo)

    def edit(
        self, image: Image.Image | str | Path, instruction: str, *, strength: float = 1.0, seed: int = 0
    ) -> Image.Image:
        """Edit one PIL image or image file as `instruction` requests; the result has the input's upright size."""
        return self.edit_batch([image], [instruction], strength=strength, seeds=[seed])[0]

    def save_lora(
        self, image: Image.Image | str | Path, instruction: str, directory: str | Path, *, strength: float = 1.0
    ) -> Path:
        """Write the LoRA update generated for (image, instruction) as a PEFT adapter for the bare editor.

        The editor with the adapter expects the sentence embedding of the text that `read_instructions` returns.
        For a request of several edits ("brighter and warmer") the adapter holds the first edit's update only.
        """
        check_strength(strength)
        encoded = self.encode_for_editing([instruction])
        thumbnail = self.editor.make_thumbnail(pil_to_tensor(prepare_image(image)).to(self.device, DTYPES[self.dtype]))
        lora = self.generate_lora(thumbnail, encoded).scaled(strength)
        return save_peft_adapter(self.editor, lora, directory)


def load_pipeline(model: str | Path = "hywu-lite", device: str = "auto", dtype: str = "auto") -> HywuPipeline:
    """Find a model by name or path, check its files and load it on `device` in `dtype`."""
    model_dir = resolve_model_dir(model)
    requested_name = None if looks_like_path(model) else str(model)
    resolved_device = select_device(device)
    resolved_dtype = select_dtype(dtype, resolved_device)
    try:
        return HywuPipeline(model_dir, resolved_device, resolved_dtype, requested_name)
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        hint = download_hint(requested_name) if requested_name else download_hint(folder=model_dir)
        raise ModelFilesError(f"failed to load model from {model_dir}: {error}; {hint}") from error
