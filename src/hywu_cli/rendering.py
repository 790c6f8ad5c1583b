"""Fast full-resolution rendering of predicted operators on 8-bit photos.

`LiteEditorNetwork.render` is the reference: float32 tensors, differentiable, used in training and evaluation.
This module renders the same operators straight from and to 8-bit RGB arrays, in horizontal strips spread over
threads, with NumPy's table lookups (several times faster than torch indexing on a CPU) and with the spatial map
and overlays interpolated strip by strip. It handles every operator: the colour table, the spatial gain/offset map,
the seeded overlays and the blur, posterize and ink filters. The filters blur a downsampled copy (as
`ops.gaussian_blur` does) once per photo and upsample it strip by strip. `tests/test_rendering.py` checks the fast
and the reference renderer against each other.

When numba is installed and the photo has at least `COMPILED_MIN_PIXELS` pixels, each strip runs through the
compiled kernel of `hywu_cli.rendering_kernels`, row by row without full-size temporaries. It gives the same bytes
as the NumPy strips except for rare one-level steps (see that module). The thread pool stays: the kernel releases
the GIL, so `workers` threads render strips in parallel. Otherwise the NumPy strips below run.

Shapes: images are (height, width, 3) uint8 in NumPy's channels-last layout.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np
from PIL import Image
import torch

from hywu_cli import ops
from hywu_cli.editor import LUT_TABLE_LEVELS, SKIP_WEIGHT, EditOperators


logger = logging.getLogger(__name__)

STRIP_ROWS = 128

# Render with the compiled kernel of `hywu_cli.rendering_kernels` when numba imports. False forces the NumPy strips.
USE_COMPILED_KERNEL = True

# Photos below this many pixels use the NumPy strips. Importing numba costs about 0.65 s per process with a warm
# cache and about 7 s the first time, to compile. The kernel saved about 0.07 s per megapixel on 2 cores, so it pays
# off only on large photos or in long batches (estimates measured on a busy 2-core machine).
COMPILED_MIN_PIXELS = 8_000_000

# The kernel module once imported, False once its import failed, None before the first render.
_kernels = None

# Scalar indices in `EditOperators.scalars` (see `hywu_cli.editor.SCALAR_NAMES`).
_SMALL_BLUR, _LARGE_BLUR, _POSTERIZE, _INK, _GRAIN, _SNOW, _RAIN = range(7)


def linear_resize_weights(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (index0, index1, fraction) that reproduce `F.interpolate(mode="bilinear", align_corners=False)` on one axis."""
    # float32 throughout, as torch computes it for float32 tensors: at a position near 1,000 a float32 step is
    # 6e-5, so float64 positions would move the weights of large grids (grain) away from torch's.
    scale = np.float32(source) / np.float32(target)
    position = np.maximum(scale * (np.arange(target, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    index0 = np.minimum(position.astype(np.int64), source - 1)
    index1 = np.minimum(index0 + 1, source - 1)
    fraction = np.clip(position - index0.astype(np.float32), 0, 1)
    return index0, index1, fraction.astype(np.float32)


def resize_matrix(source: int, target: int) -> np.ndarray:
    """Return the (source, target) matrix M with `values @ M` equal to bilinear resizing along one axis."""
    index0, index1, fraction = linear_resize_weights(source, target)
    matrix = np.zeros((source, target), dtype=np.float32)
    columns = np.arange(target)
    np.add.at(matrix, (index0, columns), 1 - fraction)
    np.add.at(matrix, (index1, columns), fraction)
    return matrix


def _resize_rows(field: np.ndarray, rows: slice, weights_y, columns_matrix: np.ndarray) -> np.ndarray:
    """Bilinearly resize `field` (channels, small_h, small_w) and return output rows `rows`, (h, W, channels)."""
    index0, index1, fraction = (w[rows] for w in weights_y)
    fraction = fraction[None, :, None]
    band = field[:, index0] * (1 - fraction) + field[:, index1] * fraction  # (channels, h, small_w)
    # One small matrix product per row resizes the columns and yields channels-last output.
    return np.matmul(columns_matrix.T[None], band.transpose(1, 2, 0))  # (h, W, channels)


def _dense_table(lut: torch.Tensor) -> np.ndarray:
    """Resample a (1, 3, n, n, n) LUT to (levels**3, 3) float32 rows, indexed by (blue * levels + green) * levels
    + red.

    Equals `F.interpolate(lut, size=(levels,) * 3, mode="trilinear", align_corners=True)` up to float rounding.
    Trilinear resizing is separable, so three matrix products (red, green, then blue axis) compute it and write the
    channels-last rows directly: about 4 ms instead of 30 ms on 2 cores. They run in torch, because NumPy's
    OpenBLAS threads keep spinning after a product and then slow the rendering threads down by about a third.
    """
    levels = LUT_TABLE_LEVELS
    table = lut[0].detach().float().cpu().permute(1, 2, 3, 0)  # (blue, green, red, channel), n nodes each
    nodes = table.shape[0]
    weights = torch.from_numpy(resize_weights_aligned(nodes, levels))  # (levels, n)
    table = torch.einsum("kr,bgrc->bgkc", weights, table)  # (n, n, levels, 3)
    table = torch.einsum("jg,bgkc->bjkc", weights, table)  # (n, levels, levels, 3)
    dense = weights @ table.reshape(nodes, -1)  # (levels, levels * levels * 3)
    return dense.numpy().reshape(-1, 3)


def _round_to_bytes(table: np.ndarray) -> np.ndarray:
    """Return `np.clip(np.round(table * 255), 0, 255)` as uint8, computed in place on a scaled copy."""
    scaled = table * np.float32(255)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def resize_weights_aligned(source: int, target: int) -> np.ndarray:
    """Return the (target, source) matrix of `F.interpolate(mode="linear", align_corners=True)` along one axis.

    Positions and fractions are float32, as torch computes them. Each row mixes one source index (at most
    source - 2) with the next.
    """
    position = np.arange(target, dtype=np.float32) * np.float32((source - 1) / (target - 1))
    lower = np.minimum(np.floor(position).astype(np.int64), source - 2)
    fractions = (position - lower.astype(np.float32)).astype(np.float32)
    matrix = np.zeros((target, source), dtype=np.float32)
    rows = np.arange(target)
    matrix[rows, lower] = 1 - fractions
    matrix[rows, lower + 1] += fractions
    return matrix


def render_uint8(
    image: np.ndarray, operators: EditOperators, seed: int, workers: int | None = None
) -> np.ndarray | None:
    """Render one photo's operators (batch of 1) onto an 8-bit image.

    Args:
        image: (height, width, 3) uint8.
        operators: predicted for this image, batch size 1.
        seed: seeds the overlays exactly as the reference renderer does.
        workers: threads for the strips; defaults to the number of CPU cores.
    """
    scalars = operators.scalars[0].detach().float().cpu()
    height, width, _ = image.shape
    levels = LUT_TABLE_LEVELS

    # 1. Per-channel parts of the table index: the same rounding as `ops.apply_color_lut(..., table_levels)`.
    level_of = torch.round(torch.arange(256, dtype=torch.float32) / 255 * (levels - 1)).to(torch.int32).numpy()
    index_red, index_green, index_blue = level_of, level_of * levels, level_of * levels * levels

    # 2. Spatial map and overlays, resized strip by strip.
    spatial = operators.spatial[0].detach().float().cpu().numpy()  # (6, map_h, map_w)
    spatial_active = bool(np.abs(spatial).max() > 0.5 / 255)
    weights_y = linear_resize_weights(spatial.shape[1], height)
    columns_matrix = resize_matrix(spatial.shape[2], width)
    kernels = _load_kernels() if USE_COMPILED_KERNEL and height * width >= COMPILED_MIN_PIXELS else None
    overlays = _overlays(scalars, seed, height, width, kernels)
    filters = _Filters(image, scalars, kernels)
    table_only = not (spatial_active or overlays or filters.active)

    # 3. Colours come from the dense table, rounded to 8 bits when nothing follows it.
    table = _dense_table(operators.lut)
    fast_table = _round_to_bytes(table) if table_only else None

    output = np.empty(image.shape, np.uint8)  # C order, which the kernel expects whatever the input's layout
    if kernels is not None:
        render_strip = _compiled_strip_renderer(
            kernels, image, output, level_of, table, fast_table, filters, spatial, spatial_active, overlays
        )
        _render_strips(render_strip, height, workers)
        return output

    def render_numpy_strip(start: int) -> None:
        rows = slice(start, min(start + STRIP_ROWS, height))
        strip = image[rows]
        if filters.mixes_input:
            flat = _table_index(filters.mix(strip, rows), levels)
        else:
            flat = index_red[strip[..., 0]] + index_green[strip[..., 1]] + index_blue[strip[..., 2]]
        if fast_table is not None:
            output[rows] = np.take(fast_table, flat, axis=0)
            return
        colour = np.take(table, flat, axis=0)  # (h, W, 3) float32
        if spatial_active:
            maps = _resize_rows(spatial, rows, weights_y, columns_matrix)  # (h, W, 6)
            colour = colour * (1 + maps[..., :3]) + maps[..., 3:]
        if filters.ink:
            colour = colour - filters.ink * filters.edges(strip, rows)[..., None]
        for overlay in overlays:
            band = overlay.alpha(rows)[..., None]
            if overlay.kind == "grain":
                colour = colour + overlay.weight * band
            else:
                target = np.asarray(ops.SNOW_COLOUR if overlay.kind == "snow" else ops.RAIN_COLOUR, dtype=np.float32)
                colour = colour + (min(max(overlay.weight, 0.0), 1.0) * band) * (target - colour)
        output[rows] = np.clip(np.round(colour * 255), 0, 255).astype(np.uint8)

    _render_strips(render_numpy_strip, height, workers)
    return output


def _render_strips(render_strip, height: int, workers: int | None) -> None:
    """Call `render_strip(first_row)` for every strip of `STRIP_ROWS` rows, on `workers` threads (default: cores)."""
    _map_on_threads(render_strip, range(0, height, STRIP_ROWS), workers)


def _map_on_threads(function, items, workers: int | None = None) -> list:
    """Return `[function(item) for item in items]`, computed on `workers` threads (default: CPU cores).

    The compiled kernels release the GIL, so their calls run in parallel.
    """
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(function, items))


def compiled_kernel_pending(pixels: int) -> bool:
    """Return whether rendering a photo of `pixels` pixels will first compile the numba kernel.

    That happens once after installing (about 7 s on 2 cores), or in every process when numba finds no writable
    cache folder. Importing numba here costs about 0.65 s, which the render of such a photo pays anyway.
    """
    if not USE_COMPILED_KERNEL or pixels < COMPILED_MIN_PIXELS:
        return False
    kernels = _load_kernels()
    if kernels is None or kernels.render_rows.signatures:
        return False
    try:
        # NOTE: numba's on-disk index, read through its internals (numba 0.68). It is empty when nothing is cached
        # for the current source. If the internals change, this returns False and no notice is printed.
        return not kernels.render_rows._cache._cache_file._load_index()
    except Exception as error:  # noqa: BLE001 - any failure only loses a notice
        logger.debug("cannot tell whether the rendering kernel is cached: %s", error)
        return False


def _load_kernels() -> ModuleType | None:
    """Import `hywu_cli.rendering_kernels` on first use and return it, or None when numba is not installed."""
    global _kernels
    if _kernels is None:
        try:
            from hywu_cli import rendering_kernels
        except ImportError as error:
            logger.debug("numba is not available, so photos are rendered with NumPy strips: %s", error)
            _kernels = False
        else:
            _kernels = rendering_kernels
    return _kernels or None


def _compiled_strip_renderer(
    kernels: ModuleType,
    image: np.ndarray,
    output: np.ndarray,
    level_of: np.ndarray,
    table: np.ndarray,
    fast_table: np.ndarray | None,
    filters: _Filters,
    spatial: np.ndarray,
    spatial_active: bool,
    overlays: list[_Overlay],
):
    """Return a function of a strip's first row that renders the strip into `output` with the compiled kernel."""
    height, width, _ = image.shape
    float32 = np.float32

    # numba compiles one version per argument type, and a read-only array is a type of its own. Passing a
    # read-only view in every case keeps one compiled version for photos from PIL (read-only) and other arrays.
    pixels = np.ascontiguousarray(image).view()
    pixels.flags.writeable = False

    # 1. Filters: the input's weight and the blurred copies, with placeholders for the unused ones.
    input_weight = 1 - filters.small_blur - filters.large_blur - filters.posterize
    mix_weights = np.array([input_weight / 255, filters.small_blur, filters.large_blur, filters.posterize], float32)
    small = _kernel_grid(filters.small if filters.active else None, height, width, channels=3)
    large = _kernel_grid(filters.large if filters.active else None, height, width, channels=3)
    luma_blur = _kernel_grid(filters.luma_blur if filters.active else None, height, width, channels=1)

    # 2. The spatial gain and offset as channels-last grids, (map_h, map_w, 3) each.
    map_rows = linear_resize_weights(spatial.shape[1], height)
    map_columns = linear_resize_weights(spatial.shape[2], width)
    gain = _kernel_grid((spatial[:3].transpose(1, 2, 0), map_rows, map_columns), height, width, channels=3)
    offset = _kernel_grid((spatial[3:].transpose(1, 2, 0), map_rows, map_columns), height, width, channels=3)

    # 3. Overlays: grain as its grid, snow and rain as stacked grids.
    grain = next((overlay for overlay in overlays if overlay.kind == "grain"), None)
    blended = [overlay for overlay in overlays if overlay.kind != "grain"]
    overlay_grids, overlay_opacity, overlay_kind = _stack_overlay_grids(blended, height, width)
    overlay_strength = np.array([min(max(overlay.weight, 0.0), 1.0) for overlay in blended], dtype=float32)
    overlay_colour = np.array(
        [ops.SNOW_COLOUR if overlay.kind == "snow" else ops.RAIN_COLOUR for overlay in blended], dtype=float32
    ).reshape(-1, 3)

    arguments = (
        level_of.astype(np.int32),
        LUT_TABLE_LEVELS,
        table,
        fast_table if fast_table is not None else np.zeros((1, 3), np.uint8),
        fast_table is not None,
        mix_weights,
        small,
        large,
        luma_blur,
        np.asarray(ops.LUMA_WEIGHTS, dtype=float32),
        float32(filters.ink),
        float32(ops.EDGE_GAIN),
        float32(ops.POSTERIZE_LEVELS),
        gain,
        offset,
        spatial_active,
        grain.grain_source if grain is not None else _kernel_grid(None, height, width, channels=1),
        grain.grain_std if grain is not None else float32(1.0),
        float32(grain.weight if grain is not None else 0.0),
        overlay_grids,
        overlay_opacity,
        overlay_kind,
        overlay_strength,
        overlay_colour,
    )

    def render_strip(start: int) -> None:
        kernels.render_rows(pixels, output, start, min(start + STRIP_ROWS, height), *arguments)

    return render_strip


def _kernel_grid(source, height: int, width: int, channels: int):
    """Return a grid and its bilinear weights as the kernel's tuple, from `_upsample`'s (grid, rows, columns).

    A full-resolution grid (rows None) gets weights that select each pixel, and a missing grid gets a placeholder
    that the kernel never reads.
    """
    if source is None:
        empty_index, empty_fraction = np.zeros(0, np.int64), np.zeros(0, np.float32)
        grid = np.zeros((1, 1, channels), np.float32)
        return grid, empty_index, empty_index, empty_fraction, empty_index, empty_index, empty_fraction
    grid, rows, columns = source
    if rows is None:
        rows = (np.arange(height), np.arange(height), np.zeros(height, np.float32))
        columns = (np.arange(width), np.arange(width), np.zeros(width, np.float32))
    index_y0, index_y1, fraction_y = rows
    index_x0, index_x1, fraction_x = columns
    return (
        np.ascontiguousarray(grid, dtype=np.float32),
        np.ascontiguousarray(index_y0, dtype=np.int64),
        np.ascontiguousarray(index_y1, dtype=np.int64),
        np.ascontiguousarray(fraction_y, dtype=np.float32),
        np.ascontiguousarray(index_x0, dtype=np.int64),
        np.ascontiguousarray(index_x1, dtype=np.int64),
        np.ascontiguousarray(fraction_x, dtype=np.float32),
    )


def _stack_overlay_grids(overlays: list[_Overlay], height: int, width: int):
    """Stack the grids of the snow and rain overlays for the kernel.

    Returns the kernel's grid tuple with the grids zero-padded to (grids, max_h, max_w) and weights of
    (grids, height) and (grids, width), the opacity of each grid and the index of its overlay in `overlays`.
    """
    sources = [(source, opacity, kind) for kind, overlay in enumerate(overlays) for source, opacity in overlay.grids]
    count = len(sources)
    max_h = max((source[0].shape[0] for source, _, _ in sources), default=1)
    max_w = max((source[0].shape[1] for source, _, _ in sources), default=1)
    grids = np.zeros((count, max_h, max_w), np.float32)
    index_y0, index_y1 = np.zeros((count, height), np.int64), np.zeros((count, height), np.int64)
    index_x0, index_x1 = np.zeros((count, width), np.int64), np.zeros((count, width), np.int64)
    fraction_y, fraction_x = np.zeros((count, height), np.float32), np.zeros((count, width), np.float32)
    for number, ((grid, rows, columns), _, _) in enumerate(sources):
        grids[number, : grid.shape[0], : grid.shape[1]] = grid[..., 0]
        index_y0[number], index_y1[number], fraction_y[number] = rows
        index_x0[number], index_x1[number], fraction_x[number] = columns
    opacity = np.array([opacity for _, opacity, _ in sources], dtype=np.float32)
    kind = np.array([kind for _, _, kind in sources], dtype=np.int64)
    return (grids, index_y0, index_y1, fraction_y, index_x0, index_x1, fraction_x), opacity, kind


class _Filters:
    """The blur, posterize and ink filters of one photo, from blurred copies computed once at low resolution.

    Follows `LiteEditorNetwork.render`: the input is mixed with its small blur, large blur and posterized copy
    before the colour table. Ink lines are subtracted after the spatial map.
    """

    def __init__(self, image: np.ndarray, scalars: torch.Tensor, kernels: ModuleType | None = None) -> None:
        self.height, self.width, _ = image.shape
        self.kernels = kernels
        weight = {index: float(scalars[index]) for index in (_SMALL_BLUR, _LARGE_BLUR, _POSTERIZE, _INK)}
        used = {index: abs(value) > SKIP_WEIGHT for index, value in weight.items()}
        self.small_blur = weight[_SMALL_BLUR] if used[_SMALL_BLUR] else 0.0
        self.large_blur = weight[_LARGE_BLUR] if used[_LARGE_BLUR] else 0.0
        self.posterize = weight[_POSTERIZE] if used[_POSTERIZE] else 0.0
        self.ink = weight[_INK] if used[_INK] else 0.0
        self.mixes_input = bool(self.small_blur or self.large_blur or self.posterize)
        self.active = self.mixes_input or bool(self.ink)
        if not self.active:
            return

        self.image = image
        self._channels = None
        self.small = self._low_resolution(ops.SMALL_BLUR_SIGMA) if self.small_blur or self.posterize else None
        self.large = self._low_resolution(ops.LARGE_BLUR_SIGMA) if self.large_blur else None
        self.luma_blur = None
        if self.ink:
            # Blurring and pooling are linear, so the luma of the blurred colours equals the blur of the luma, and
            # it skips a full-resolution luma pass.
            colour_blur, rows, columns = self._low_resolution(ops.EDGE_BLUR_SIGMA)
            luma = colour_blur @ np.asarray(ops.LUMA_WEIGHTS, dtype=np.float32)
            self.luma_blur = (np.ascontiguousarray(luma[..., None]), rows, columns)

    def _low_resolution(self, relative_sigma: float):
        """Return the blurred copy before its final upsampling as (array (h, w, channels), row and column weights),
        or the full-resolution blur when `ops.gaussian_blur` does not downsample."""
        sigma = relative_sigma * min(self.height, self.width)
        factor = max(1, int(sigma))
        if sigma < 0.3 or factor == 1:
            # torch.tensor copies, so a read-only array (np.asarray of a PIL image) raises no warning.
            pixels = torch.tensor(self.image).permute(2, 0, 1)[None].float().div_(255)  # (1, 3, H, W)
            blurred = ops.gaussian_blur(pixels, relative_sigma)[0].permute(1, 2, 0).contiguous().numpy()
            return blurred, None, None
        small = self._blur(self._box_reduce(factor), sigma / factor)
        rows = ops.block_centre_weights(self.height, factor)
        columns = ops.block_centre_weights(self.width, factor)
        return small, rows, columns

    def _blur(self, pixels: np.ndarray, sigma: float) -> np.ndarray:
        """Return `ops.gaussian_blur_pixels` of (h, w, 3) float32 block means, up to float rounding.

        The compiled `gaussian_blur` takes about 2.5 ms for the 334 x 445 means of a 12-megapixel photo, where
        torch's grouped convolution takes about 10 ms on 2 cores. `_gaussian_blur` runs the same float32 operations
        in NumPy, so the kernel and the NumPy strips blur alike: a posterize step turns the smallest difference in
        a blurred value into a jump of many levels.
        """
        kernel = ops.gaussian_kernel(sigma).numpy()
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        if self.kernels is not None:
            return self.kernels.gaussian_blur(pixels, kernel)
        return _gaussian_blur(pixels, kernel)

    def _box_reduce(self, factor: int) -> np.ndarray:
        """Return the mean of every `factor` x `factor` block (partial blocks at the far edges), (h, w, 3) float32.

        Pillow's `reduce` computes the same block means as `ops.gaussian_blur`, in C, far faster than pooling a
        float tensor. The compiled `box_means`, when numba is installed, gives the same values several times faster
        still, because it reads the 8-bit pixels once and skips Pillow's conversion to float channels.
        """
        if self.kernels is not None:
            pixels = np.ascontiguousarray(self.image).view()
            pixels.flags.writeable = False
            return _box_means_on_threads(self.kernels, pixels, factor)
        if self._channels is None:
            # Reducing float channels keeps the means exact: 8-bit means would be rounded, and half a level can move
            # a pixel across a posterize step.
            self._channels = [channel.convert("F") for channel in Image.fromarray(self.image).split()]
        reduced = np.stack([np.asarray(channel.reduce(factor)) for channel in self._channels], axis=-1)
        return reduced / 255

    def mix(self, strip: np.ndarray, rows: slice) -> np.ndarray:
        """Return the strip mixed with its filtered copies and clipped to [0, 1], (h, W, 3) float32.

        input + w_s (small - input) + w_l (large - input) + w_p (posterized - input), computed in place as
        (1 - w_s - w_l - w_p) input + w_s small + w_l large + w_p posterized.
        """
        mixed = strip.astype(np.float32)
        mixed *= (1 - self.small_blur - self.large_blur - self.posterize) / 255
        small = _upsample(self.small, rows) if self.small is not None else None
        if self.small_blur:
            mixed += self.small_blur * small
        if self.large_blur:
            mixed += self.large_blur * _upsample(self.large, rows)
        if self.posterize:
            mixed += self.posterize * _posterized(np.clip(small, 0, 1, out=small))
        return np.clip(mixed, 0, 1, out=mixed)

    def edges(self, strip: np.ndarray, rows: slice) -> np.ndarray:
        """Return the ink-line map of the strip, (h, W), as `ops.edge_magnitude` computes it."""
        red, green, blue = (strip[..., channel].astype(np.float32) / 255 for channel in range(3))
        luma = ops.LUMA_WEIGHTS[0] * red + ops.LUMA_WEIGHTS[1] * green + ops.LUMA_WEIGHTS[2] * blue
        blurred = _upsample(self.luma_blur, rows)[..., 0]
        return np.clip(np.abs(luma - blurred) * ops.EDGE_GAIN, 0, 1)


def _gaussian_blur(pixels: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """NumPy version of `rendering_kernels.gaussian_blur`: blur (h, w, channels) float32 along rows, then columns,
    adding the taps in the same order."""
    radius = kernel.size // 2
    mode = "reflect" if min(pixels.shape[:2]) > radius else "edge"  # torch's reflect, or its replicate
    across = np.zeros_like(pixels)
    padded = np.pad(pixels, ((0, 0), (radius, radius), (0, 0)), mode=mode)
    width = pixels.shape[1]
    for tap, weight in enumerate(kernel):
        across += weight * padded[:, tap : tap + width]
    blurred = np.zeros_like(pixels)
    padded = np.pad(across, ((radius, radius), (0, 0), (0, 0)), mode=mode)
    height = pixels.shape[0]
    for tap, weight in enumerate(kernel):
        blurred += weight * padded[tap : tap + height]
    return blurred


def _box_means_on_threads(kernels: ModuleType, pixels: np.ndarray, factor: int, workers: int | None = None):
    """Return `kernels.box_means(pixels, factor)`, computed in bands of block rows on `workers` threads."""
    height, width, channels = pixels.shape
    rows, columns = -(-height // factor), -(-width // factor)
    means = np.empty((rows, columns, channels), np.float32)
    band = max(1, STRIP_ROWS // factor)

    def reduce_band(first: int) -> None:
        kernels.box_means_rows(pixels, factor, means, first, min(first + band, rows))

    _map_on_threads(reduce_band, range(0, rows, band), workers)
    return means


def _upsample(source, rows: slice) -> np.ndarray:
    """Return output rows `rows` of a small grid (blurred copy or overlay) upsampled bilinearly, (h, W, channels).

    The grid rows that the strip needs are resized to the full width first, then mixed between rows, in the order
    and with the float32 operations of the compiled kernel (`rendering_kernels._upsample`).
    """
    small, weights_y, weights_x = source  # small: (h_small, w_small, channels)
    if weights_y is None:
        return small[rows].copy()
    index0, index1, fraction = (w[rows] for w in weights_y)
    first, last = int(index0.min()), int(index1.max())
    band = small[first : last + 1]  # (grid rows of the strip, w_small, channels)

    # np.take is several times faster than fancy indexing for these gathers.
    column0, column1, column_fraction = weights_x
    column_fraction = column_fraction[None, :, None]
    resized = np.take(band, column0, axis=1) * (1 - column_fraction)
    resized += np.take(band, column1, axis=1) * column_fraction  # (grid rows, W, channels)

    fraction = fraction[:, None, None]
    upsampled = np.take(resized, index0 - first, axis=0) * (1 - fraction)
    upsampled += np.take(resized, index1 - first, axis=0) * fraction
    return upsampled  # (h, W, channels)


def _posterized(smooth: np.ndarray, levels: int = ops.POSTERIZE_LEVELS) -> np.ndarray:
    """NumPy version of `ops.posterize` after its blur: quantize luma, keep hue. `smooth` is (h, W, 3), and is
    overwritten with the result."""
    red, green, blue = ops.LUMA_WEIGHTS
    luma = red * smooth[..., 0] + green * smooth[..., 1] + blue * smooth[..., 2]
    steps = np.floor(luma * levels)
    steps += 0.5
    steps /= levels
    steps /= np.maximum(luma, 1e-3, out=luma)
    smooth *= steps[..., None]
    return np.clip(smooth, 0, 1, out=smooth)


def _table_index(mixed: np.ndarray, levels: int) -> np.ndarray:
    """Return the flat colour-table row of every pixel of `mixed` (h, W, 3) in [0, 1], rounded to the nearest
    level per channel as `ops.apply_color_lut` does."""
    scaled = mixed * (levels - 1)
    quantized = np.rint(scaled, out=scaled).astype(np.int32)
    flat = quantized[..., 2] * levels
    flat += quantized[..., 1]
    flat *= levels
    flat += quantized[..., 0]
    return flat


class _Overlay:
    """One seeded overlay of a photo, kept at grid resolution and upsampled strip by strip.

    Snow and rain are bilinear upsamplings of small grids (`ops.snow_grids`, `ops.rain_grid`), so each strip
    interpolates only its own rows and no full-resolution alpha map is held. Grain is normalised by the standard
    deviation of its full-resolution map. The NumPy strips draw that map in full (`ops.grain_layer`); for the
    compiled kernel, `grain_source` keeps the grain's grid and `grain_std` is measured strip by strip.
    """

    def __init__(
        self, kind: str, weight: float, seed: int, height: int, width: int, kernels: ModuleType | None = None
    ) -> None:
        self.kind, self.weight = kind, weight
        self.full = None
        self.grids = []
        if kind == "grain" and kernels is None:
            self.full = ops.grain_layer([seed], height, width)[0, 0].numpy()
            return
        if kind == "grain":
            self.grain_source, self.grain_std = _grain_for_kernel(kernels, seed, height, width)
            return
        grids = ops.snow_grids(seed, height, width) if kind == "snow" else [(ops.rain_grid(seed, height, width), 1.0)]
        for grid, opacity in grids:
            array = np.ascontiguousarray(grid.numpy()[..., None])  # (grid_h, grid_w, 1)
            rows = linear_resize_weights(array.shape[0], height)
            columns = linear_resize_weights(array.shape[1], width)
            self.grids.append(((array, rows, columns), opacity))

    def alpha(self, rows: slice) -> np.ndarray:
        """Return the overlay's alpha (or grain) for output rows `rows`, (h, W)."""
        if self.full is not None:
            return self.full[rows]
        total = None
        for source, opacity in self.grids:
            band = _upsample(source, rows)[..., 0]
            band *= opacity
            total = band if total is None else total + band
        return np.clip(total, 0, 1, out=total)


def _overlays(
    scalars: torch.Tensor, seed: int, height: int, width: int, kernels: ModuleType | None = None
) -> list[_Overlay]:
    overlays = []
    for index, kind in ((_GRAIN, "grain"), (_SNOW, "snow"), (_RAIN, "rain")):
        weight = float(scalars[index])
        if abs(weight) > SKIP_WEIGHT and not (kind != "grain" and weight <= 0):
            overlays.append(_Overlay(kind, weight, seed, height, width, kernels))
    return overlays


def _grain_for_kernel(kernels: ModuleType, seed: int, height: int, width: int, workers: int | None = None):
    """Return the grain's grid as the kernel's tuple and the standard deviation to divide it by, as float32.

    Equals `ops.grain_layer` without drawing the full map: on a 12-megapixel photo that map takes 48 MB and about
    60 ms. The sums for the standard deviation run strip by strip on threads, in float64.
    """
    grid = ops.grain_grid(seed, height, width).numpy()[..., None]  # (grid_h, grid_w, 1)
    if grid.shape[:2] == (height, width):
        return _kernel_grid((grid, None, None), height, width, channels=1), np.float32(1.0)
    rows = linear_resize_weights(grid.shape[0], height)
    columns = linear_resize_weights(grid.shape[1], width)
    source = _kernel_grid((grid, rows, columns), height, width, channels=1)

    def sum_strip(start: int) -> tuple[float, float]:
        return kernels.grid_sums(source, start, min(start + STRIP_ROWS, height))

    sums = _map_on_threads(sum_strip, range(0, height, STRIP_ROWS), workers)
    count = height * width
    total = math.fsum(first for first, _ in sums)
    squares = math.fsum(second for _, second in sums)
    variance = max(squares - total * total / count, 0.0) / max(count - 1, 1)  # unbiased, as torch.std
    return source, np.float32(max(math.sqrt(variance), ops.GRAIN_MIN_STD))
