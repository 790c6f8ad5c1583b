"""Resolution-independent image primitives shared by the edit catalogue and the base editor.

Images are float tensors (batch, 3, height, width) in [0, 1], sRGB-encoded. Every spatial size is given relative to
the shorter image side, so the same call on a thumbnail and on a 12-megapixel photo gives the same look. The
seeded overlays (snow, rain, grain) are drawn at the full resolution asked for; the same seed and size always give
the same pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601

# Relative Gaussian sigmas of the two blur features the base editor mixes, and of the edge detector.
SMALL_BLUR_SIGMA = 0.003
LARGE_BLUR_SIGMA = 0.009
EDGE_BLUR_SIGMA = 0.0025
EDGE_GAIN = 8.0
POSTERIZE_LEVELS = 6

# Colours that the snow and rain overlays blend towards.
SNOW_COLOUR = (0.97, 0.97, 0.97)
RAIN_COLOUR = (0.82, 0.84, 0.88)


def luma(image: torch.Tensor) -> torch.Tensor:
    """Return BT.601 luma, (batch, 1, height, width)."""
    r, g, b = image.unbind(1)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(1)


def gaussian_kernel(
    sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Return the normalised 1-D Gaussian of `sigma` pixels, radius ceil(3 sigma) and at least 1."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur_pixels(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur with a Gaussian of `sigma` pixels by separable convolution, padding by reflection at the borders."""
    channels = image.shape[1]
    kernel = gaussian_kernel(sigma, image.dtype, image.device)
    radius = kernel.numel() // 2
    # Reflect padding needs a pad smaller than the side; very small images fall back to replicate.
    mode = "reflect" if min(image.shape[-2:]) > radius else "replicate"
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode=mode), horizontal, groups=channels)
    return F.conv2d(F.pad(image, (0, 0, radius, radius), mode=mode), vertical, groups=channels)


def gaussian_blur(image: torch.Tensor, relative_sigma: float) -> torch.Tensor:
    """Blur with a Gaussian whose sigma is `relative_sigma` times the shorter side.

    Sigmas of two pixels and more are computed on block means (blocks of about sigma pixels; the last block of a
    row or column may be partial) and interpolated back linearly from the block centres. This keeps the cost low
    and nearly independent of the sigma at 12+ megapixels. The result is close to, not exactly, a Gaussian. The
    ground truth, the editor and the 8-bit renderer (which takes the block means from Pillow's `reduce`) all
    compute this same blur.
    """
    height, width = image.shape[-2:]
    sigma = relative_sigma * min(height, width)
    if sigma < 0.3:
        return image
    factor = max(1, int(sigma))
    if factor == 1:
        return gaussian_blur_pixels(image, sigma)
    small = gaussian_blur_pixels(F.avg_pool2d(image, factor, ceil_mode=True), sigma / factor)
    return upsample_blocks(small, height, width, factor)


def smooth_map(maps: torch.Tensor) -> torch.Tensor:
    """Blur small maps (batch, channels, height, width) with a 5-tap binomial filter (1, 4, 6, 4, 1) / 16 per axis.

    Edges are padded by repeating the border cells, so a constant map stays constant.
    """
    channels = maps.shape[1]
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=maps.dtype, device=maps.device) / 16
    padded = F.pad(maps, (2, 2, 2, 2), mode="replicate")
    rows = F.conv2d(padded, taps.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)


def block_centre_weights(size: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (index0, index1, fraction) that linearly interpolate `size` pixels from the means of blocks of
    `factor` pixels (the last block may be partial), each block sitting at the centre of the pixels it covers."""
    starts = np.arange(0, size, factor)
    centres = (starts + np.minimum(starts + factor, size)) / 2 - 0.5
    if len(centres) == 1:
        return np.zeros(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.float32)
    position = np.clip(np.arange(size, dtype=np.float64), centres[0], centres[-1])
    index1 = np.clip(np.searchsorted(centres, position, side="right"), 1, len(centres) - 1)
    index0 = index1 - 1
    fraction = (position - centres[index0]) / (centres[index1] - centres[index0])
    return index0, index1, fraction.astype(np.float32)


def upsample_blocks(small: torch.Tensor, height: int, width: int, factor: int) -> torch.Tensor:
    """Interpolate block means (batch, channels, ceil(height / factor), ceil(width / factor)) back to full size."""
    for dim, size in ((2, height), (3, width)):
        index0, index1, fraction = (torch.from_numpy(w).to(small.device) for w in block_centre_weights(size, factor))
        shape = (-1, 1) if dim == 2 else (1, -1)
        fraction = fraction.to(small.dtype).view(shape)
        small = small.index_select(dim, index0) * (1 - fraction) + small.index_select(dim, index1) * fraction
    return small


def posterize(image: torch.Tensor, levels: int = POSTERIZE_LEVELS) -> torch.Tensor:
    """Return the flat colour areas of a cartoon: a lightly blurred copy whose luma is quantized to `levels` steps.

    Scaling all three channels by quantized luma / luma keeps each pixel's hue, where quantizing the channels one
    by one would break skin and sky into false colours.
    """
    smooth = gaussian_blur(image, SMALL_BLUR_SIGMA).clamp(0, 1)
    y = luma(smooth)
    steps = (torch.floor(y * levels) + 0.5) / levels
    return (smooth * steps / y.clamp_min(1e-3)).clamp(0, 1)


def edge_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Return an ink-line map in [0, 1], (batch, 1, height, width): the scaled difference of luma and its blur."""
    y = luma(image)
    return ((y - gaussian_blur(y, EDGE_BLUR_SIGMA)).abs() * EDGE_GAIN).clamp(0, 1)


def normalized_coordinates(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Return (1, 3, height, width) channels: x and y in [0, 1], and the squared radius from the centre in [0, 1]."""
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    radius2 = ((grid_x - 0.5) ** 2 + (grid_y - 0.5) ** 2) * 2.0
    return torch.stack([grid_x, grid_y, radius2]).unsqueeze(0)


def _generators(seeds: list[int], salt: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed((int(seed) * 1_000_003 + salt) % (2**63)) for seed in seeds]


def _cell_grid(height: int, width: int, cell: float) -> tuple[int, int]:
    return max(1, math.ceil(height / cell)), max(1, math.ceil(width / cell))


def snow_grids(seed: int, height: int, width: int) -> list[tuple[torch.Tensor, float]]:
    """Return the flake grids of one seed's snow, each (grid_h, grid_w) with its opacity; see `snow_layer`."""
    short = min(height, width)
    layers = ((0.003, 0.012, 0.5), (0.006, 0.008, 0.8), (0.011, 0.004, 0.95))  # (flake size, density, opacity)
    (generator,) = _generators([seed], salt=11)
    grids = []
    for size, density, opacity in layers:
        cell = max(1.0, size * short)
        grid = _cell_grid(height, width, cell)
        points = (torch.rand(grid, generator=generator) < density).float()
        points = points * (0.6 + 0.4 * torch.rand(grid, generator=generator))
        grids.append((gaussian_blur_pixels(points[None, None], 0.7)[0, 0] * 4.0, opacity))
    return grids


def snow_layer(seeds: list[int], height: int, width: int) -> torch.Tensor:
    """Draw falling snow as an alpha map (batch, 1, height, width) in [0, 1], one flake field per seed.

    Three depth layers (far, middle, near) place flakes on a grid whose cell is the flake size, soften them with a
    small blur and upsample them bilinearly to full resolution, so flakes stay round and sharp-edged at any size.
    """
    maps = []
    for seed in seeds:
        alpha = torch.zeros(1, 1, height, width)
        for blobs, opacity in snow_grids(seed, height, width):
            alpha = alpha + opacity * F.interpolate(
                blobs[None, None], size=(height, width), mode="bilinear", align_corners=False
            )
        maps.append(alpha.clamp(0, 1))
    return torch.cat(maps)


def rain_grid(seed: int, height: int, width: int) -> torch.Tensor:
    """Return one seed's rain streaks on the drop grid, (grid_h, grid_w); see `rain_layer`."""
    short = min(height, width)
    cell = max(1.0, 0.0015 * short)
    rows, columns = _cell_grid(height, width, cell)
    length = max(3, round(0.045 * short / cell))
    shift = torch.round(torch.arange(rows) * math.tan(math.radians(12))).long()
    column_index = (torch.arange(columns)[None, :] + shift[:, None]) % columns  # (rows, columns)

    (generator,) = _generators([seed], salt=23)
    points = (torch.rand((rows, columns), generator=generator) < 0.003).float()
    points = points * (0.5 + 0.5 * torch.rand((rows, columns), generator=generator))
    sheared = torch.gather(points, 1, column_index)
    running = torch.cumsum(F.pad(sheared, (0, 0, length, 0)), dim=0)
    streaks = running[length:] - running[:-length]  # sum of the `length` drops above each cell
    return torch.empty_like(streaks).scatter_(1, column_index, streaks)


def rain_layer(seeds: list[int], height: int, width: int) -> torch.Tensor:
    """Draw slanted rain streaks as an alpha map (batch, 1, height, width) in [0, 1].

    Drops are placed on a grid of cells about 0.15% of the shorter side. Each row of the grid is shifted sideways
    in proportion to its index, a shear of about 12 degrees. A running sum down the columns turns drops into
    streaks, and undoing the shear makes the streaks fall from upper left to lower right.
    """
    maps = [
        F.interpolate(rain_grid(seed, height, width)[None, None], size=(height, width), mode="bilinear", align_corners=False)
        for seed in seeds
    ]
    return torch.cat(maps).clamp(0, 1)


def grain_layer(seeds: list[int], height: int, width: int) -> torch.Tensor:
    """Draw monochrome film grain, (batch, 1, height, width), zero mean and unit standard deviation.

    Grains are about 0.08% of the shorter side, so grain stays visible after a 12-megapixel photo is downscaled.
    """
    maps = []
    for seed in seeds:
        noise = grain_grid(seed, height, width)[None, None]  # (1, 1, grid_h, grid_w)
        if noise.shape[-2:] != (height, width):
            noise = F.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False)
            noise = noise / noise.std().clamp_min(GRAIN_MIN_STD)
        maps.append(noise)
    return torch.cat(maps)


# `grain_layer` divides by the upsampled noise's standard deviation, at least this much.
GRAIN_MIN_STD = 1e-6


def grain_grid(seed: int, height: int, width: int) -> torch.Tensor:
    """Return one seed's grain noise before upsampling, (grid_h, grid_w), one value per grain cell.

    Photos with a shorter side of at most 1,250 pixels have cells of one pixel, so the grid is the grain itself.
    """
    cell = max(1.0, 0.0008 * min(height, width))
    (generator,) = _generators([seed], salt=37)
    return torch.randn(_cell_grid(height, width, cell), generator=generator)


def apply_color_lut(image: torch.Tensor, lut: torch.Tensor, table_levels: int | None = None) -> torch.Tensor:
    """Map every pixel through a 3D colour lookup table.

    Args:
        image: (batch, 3, height, width) in [0, 1].
        lut: (batch, 3, nodes, nodes, nodes) output colours, indexed [blue, green, red] along the three node axes.
        table_levels: None interpolates the nodes trilinearly (differentiable, used in training). A number first
            resamples the table to that many levels per axis and then looks each pixel up in it without
            interpolation, which is several times faster at full resolution; with 128 levels the colour error is
            at most half a level (0.4% of the range) times the table's slope.
    """
    batch, _, height, width = image.shape
    if table_levels is None:
        # grid_sample reads the last grid coordinate as the input's depth axis: (x, y, z) = (red, green, blue).
        coords = image.clamp(0, 1).permute(0, 2, 3, 1).reshape(batch, 1, height, width, 3) * 2 - 1
        out = F.grid_sample(lut, coords, mode="bilinear", padding_mode="border", align_corners=True)
        return out.view(batch, 3, height, width)

    levels = table_levels
    dense = F.interpolate(lut, size=(levels, levels, levels), mode="trilinear", align_corners=True)
    dense = dense.reshape(batch, 3, levels**3)
    index = (image.clamp(0, 1) * (levels - 1)).round_().long()  # (batch, 3, height, width)
    flat = (index[:, 2] * levels + index[:, 1]) * levels + index[:, 0]  # (batch, height, width)
    flat = flat.view(batch, 1, -1).expand(-1, 3, -1)
    return torch.gather(dense, 2, flat).view(batch, 3, height, width)


def identity_lut(nodes: int, dtype=torch.float32) -> torch.Tensor:
    """Return the (3, nodes, nodes, nodes) table that maps every colour to itself."""
    axis = torch.linspace(0, 1, nodes, dtype=dtype)
    blue, green, red = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([red, green, blue])
