"""hywu-lite's base editor: predicts per-image operators from a thumbnail and applies them at full resolution.

In the spirit of bilateral-grid editors (HDRNet, Gharbi et al., SIGGRAPH 2017) and image-adaptive 3D LUTs, a small
instruction-conditioned CNN looks at a 128 x 128 thumbnail and predicts:
- a 3D colour lookup table (9 x 9 x 9 nodes) for every global colour and tone change;
- a 16 x 16 spatial map of per-channel gain and offset for vignettes, haze and light gradients;
- seven scalars that mix fixed full-resolution filters into the result: small and large blur, posterized colour
  areas, ink lines, film grain, snow and rain overlays.
Rendering costs a few operations per pixel, so the same prediction edits a thumbnail or a 24-megapixel photo.

The network is the frozen "base model" of HY-WU: the parameter generator writes per-instance LoRA updates into its
Linear and Conv2d layers (`LORA_TARGET_PATTERNS`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from hywu_cli import ops


logger = logging.getLogger(__name__)

SCALAR_NAMES = ("small_blur", "large_blur", "posterize", "ink", "grain", "snow", "rain")

# Layers that receive generated LoRA updates: the global MLP, every head and the spatial branch. The FiLM text
# pathway and the convolutions stay untouched, because updates there compound through every later layer and made
# generator training unstable (outputs far outside [0, 1] for some instructions).
LORA_TARGET_PATTERNS = [
    r"fc1",
    r"fc2",
    r"lut_head",
    r"scalar_head",
    r"spatial_proj",
    r"spatial_conv",
    r"spatial_out",
]

# Levels per axis of the dense lookup table used when rendering without gradients.
LUT_TABLE_LEVELS = 128

# Filter and overlay weights at or below this are skipped when rendering without gradients: their effect is under
# 1% of the filter's difference from the input, and skipping saves most of the full-resolution cost.
SKIP_WEIGHT = 0.01


def _clamp_passing_gradient(weight: torch.Tensor) -> torch.Tensor:
    """Clamp an overlay opacity to [0, 1] but let the gradient through unchanged (straight-through).

    A plain clamp has zero gradient below 0, so an opacity that starts negative (the base editor never learned
    snow or rain) could never be trained to turn the overlay on.
    """
    return weight + (weight.clamp(0, 1) - weight).detach()


@dataclass
class EditOperators:
    """Operators the editor predicts for a batch: `lut` (batch, 3, n, n, n), `spatial` (batch, 6, 16, 16), `scalars`
    (batch, 7) in the order of `SCALAR_NAMES`."""

    lut: torch.Tensor
    spatial: torch.Tensor
    scalars: torch.Tensor

    def select(self, index: int) -> EditOperators:
        """Return the operators of one batch element, keeping a batch axis of size 1."""
        return EditOperators(*(t[index : index + 1] for t in (self.lut, self.spatial, self.scalars)))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> EditOperators:
        return EditOperators(*(t.to(device=device, dtype=dtype) for t in (self.lut, self.spatial, self.scalars)))


class LiteEditorNetwork(nn.Module):
    """An instruction-conditioned operator predictor; see the module docstring.

    A plain `nn.Module`, so inference starts without importing diffusers; `hywu_cli.modeling.LiteEditor` adds
    diffusers' `ModelMixin` save/load on top of it.

    Args:
        text_dim: width of the sentence embedding of the instruction (384 for all-MiniLM-L6-v2).
        thumbnail_size: side of the square thumbnail the network reads.
        lut_nodes: nodes per axis of the colour lookup table.
        channels: widths of the four stride-2 convolutions.
        hidden: width of the global MLP.
        smooth_spatial: blur the predicted spatial map (`ops.smooth_map`). The shipped base editor learned a map
            whose two outer rings of cells step sharply (a vignette came out as a dark frame with a light band
            inside it), and the blur turns that into a gradual fall-off.
    """

    def __init__(
        self,
        text_dim: int = 384,
        thumbnail_size: int = 128,
        lut_nodes: int = 9,
        channels: tuple[int, ...] = (32, 64, 96, 128),
        hidden: int = 256,
        text_hidden: int = 128,
        smooth_spatial: bool = True,
    ) -> None:
        super().__init__()
        self.hparams = SimpleNamespace(
            text_dim=text_dim,
            thumbnail_size=thumbnail_size,
            lut_nodes=lut_nodes,
            channels=tuple(channels),
            hidden=hidden,
            text_hidden=text_hidden,
            smooth_spatial=smooth_spatial,
        )
        c1, c2, c3, c4 = channels
        self.text_proj = nn.Linear(text_dim, text_hidden)
        # FiLM: a scale and shift per channel of every convolution, from the instruction.
        self.film = nn.Linear(text_hidden, 2 * (c1 + c2 + c3 + c4))
        self.conv1 = nn.Conv2d(6, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(c4 + text_hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.lut_head = nn.Linear(hidden, 3 * lut_nodes**3)
        self.scalar_head = nn.Linear(hidden, len(SCALAR_NAMES))
        self.spatial_proj = nn.Linear(hidden, c3)
        self.spatial_conv = nn.Conv2d(c3 + 3, 64, 3, padding=1)
        self.spatial_out = nn.Conv2d(64, 6, 3, padding=1)

        # Zero heads make the untrained editor the identity: LUT = identity, no spatial change, no filters.
        for head in (self.lut_head, self.scalar_head, self.spatial_out):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.register_buffer("identity_lut", ops.identity_lut(lut_nodes), persistent=False)

    def make_thumbnail(self, images: torch.Tensor) -> torch.Tensor:
        """Resize (batch, 3, height, width) images to the square input of the network, with antialiasing."""
        size = self.hparams.thumbnail_size
        return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def predict_operators(self, thumbnails: torch.Tensor, text_embeddings: torch.Tensor) -> EditOperators:
        """Predict operators from thumbnails (batch, 3, size, size) and sentence embeddings (batch, text_dim)."""
        batch = thumbnails.shape[0]
        nodes = self.hparams.lut_nodes
        c1, c2, c3, c4 = self.hparams.channels

        text = F.silu(self.text_proj(text_embeddings))  # (batch, text_hidden)
        scales, shifts = self.film(text).chunk(2, dim=1)
        scales = scales.split([c1, c2, c3, c4], dim=1)
        shifts = shifts.split([c1, c2, c3, c4], dim=1)

        coords = ops.normalized_coordinates(*thumbnails.shape[-2:], device=thumbnails.device, dtype=thumbnails.dtype)
        h = torch.cat([thumbnails, coords.expand(batch, -1, -1, -1)], dim=1)
        features = []
        for index, conv in enumerate((self.conv1, self.conv2, self.conv3, self.conv4)):
            h = conv(h)
            h = h * (1 + scales[index][:, :, None, None]) + shifts[index][:, :, None, None]
            h = F.silu(h)
            features.append(h)
        # features[2]: (batch, c3, size / 8, size / 8); features[3]: (batch, c4, size / 16, size / 16)

        pooled = features[3].mean(dim=(2, 3))
        g = F.silu(self.fc1(torch.cat([pooled, text], dim=1)))
        g = F.silu(self.fc2(g))  # (batch, hidden)

        lut = self.identity_lut + self.lut_head(g).view(batch, 3, nodes, nodes, nodes)
        scalars = self.scalar_head(g)

        local = features[2] + self.spatial_proj(g)[:, :, None, None]
        grid_coords = ops.normalized_coordinates(*local.shape[-2:], device=local.device, dtype=local.dtype)
        local = F.silu(self.spatial_conv(torch.cat([local, grid_coords.expand(batch, -1, -1, -1)], dim=1)))
        spatial = self.spatial_out(local)  # (batch, 6, size / 8, size / 8)
        if self.hparams.smooth_spatial:
            spatial = ops.smooth_map(spatial)
        return EditOperators(lut=lut, spatial=spatial, scalars=scalars)

    def render(
        self, images: torch.Tensor, operators: EditOperators, seeds: list[int], clamp: bool = True
    ) -> torch.Tensor:
        """Apply predicted operators to images (batch, 3, height, width) at their own resolution.

        `clamp=False` returns the result before clipping to [0, 1], for losses that must still see a gradient
        where the prediction overshoots.
        """
        height, width = images.shape[-2:]
        weights = operators.scalars
        small_blur, large_blur, posterize, ink, grain, snow, rain = weights.unbind(1)
        active = None if torch.is_grad_enabled() else weights.detach().abs().amax(dim=0) > SKIP_WEIGHT

        def used(index: int) -> bool:
            return active is None or bool(active[index])

        def per_sample(value: torch.Tensor) -> torch.Tensor:
            return value.view(-1, 1, 1, 1)

        # 1. Mix fixed filters into the input.
        mixed = images
        if used(0):
            mixed = mixed + per_sample(small_blur) * (ops.gaussian_blur(images, ops.SMALL_BLUR_SIGMA) - images)
        if used(1):
            mixed = mixed + per_sample(large_blur) * (ops.gaussian_blur(images, ops.LARGE_BLUR_SIGMA) - images)
        if used(2):
            mixed = mixed + per_sample(posterize) * (ops.posterize(images) - images)

        # 2. Global colour and tone through the lookup table.
        table_levels = None if torch.is_grad_enabled() else LUT_TABLE_LEVELS
        out = ops.apply_color_lut(mixed, operators.lut, table_levels)

        # 3. Spatial gain and offset, upsampled from the 16 x 16 map.
        spatial = F.interpolate(operators.spatial, size=(height, width), mode="bilinear", align_corners=False)
        gain, offset = spatial.chunk(2, dim=1)
        out = out * (1 + gain) + offset

        # 4. Ink lines and seeded overlays.
        if used(3):
            out = out - per_sample(ink) * ops.edge_magnitude(images)
        if used(4):
            out = out + per_sample(grain) * ops.grain_layer(seeds, height, width).to(out)
        if used(5):
            alpha = per_sample(_clamp_passing_gradient(snow)) * ops.snow_layer(seeds, height, width).to(out)
            out = out + alpha * (out.new_tensor(ops.SNOW_COLOUR).view(1, 3, 1, 1) - out)
        if used(6):
            alpha = per_sample(_clamp_passing_gradient(rain)) * ops.rain_layer(seeds, height, width).to(out)
            out = out + alpha * (out.new_tensor(ops.RAIN_COLOUR).view(1, 3, 1, 1) - out)
        return out.clamp(0, 1) if clamp else out

    def forward(
        self, images: torch.Tensor, text_embeddings: torch.Tensor, seeds: list[int], clamp: bool = True
    ) -> torch.Tensor:
        """Edit images (batch, 3, height, width) in [0, 1] as the instructions' embeddings (batch, text_dim) ask."""
        operators = self.predict_operators(self.make_thumbnail(images), text_embeddings)
        return self.render(images, operators, seeds, clamp)
