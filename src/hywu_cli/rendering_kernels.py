"""Compiled per-pixel kernel of `hywu_cli.rendering`, built with numba.

`render_rows` renders a range of output rows in one pass per pixel: table index, colour from the dense table,
spatial gain and offset, ink, overlays, and rounding to 8 bits. It runs without the GIL, so `hywu_cli.rendering`
calls it from a thread pool, one strip per call. Importing this module imports numba, so `hywu_cli.rendering`
imports it on first use only and keeps its NumPy strips for when numba is missing.

The kernel repeats the float32 operations of the NumPy strips in the same order, so both paths give the same bytes.
The one exception is the spatial map, which NumPy resizes with a matrix product: its sums can round differently, and
a pixel whose value falls close to a rounding boundary can then differ by one level.

Compiled code is cached on disk (`cache=True`): in the package's `__pycache__` when it is writable, else in
`NUMBA_CACHE_DIR` or numba's folder in the user cache. The cache key is a hash of this file only, so every constant
that comes from another module (luma weights, edge gain, posterize levels) is passed in as an argument rather than
read as a global, which numba would freeze into the cached code.
"""

from __future__ import annotations

import logging

import numba
import numpy as np


logger = logging.getLogger(__name__)

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_FULL_SCALE = np.float32(255.0)
_MIN_LUMA = np.float32(1e-3)


def _compile(function):
    """Compile `function` lazily with numba, cached on disk where some cache folder is writable."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError as error:
        # numba raises RuntimeError at decoration when NUMBA_CACHE_DIR, the package's __pycache__ and the user
        # cache folder are all unwritable. Each process then compiles the kernel again on first use.
        logger.debug("numba cannot cache %s, compiling without a cache: %s", function.__name__, error)
        return numba.njit(nogil=True)(function)


@_compile
def _blend_rows(grid, index0, index1, fraction, y, band):
    """Store row `y` of the bilinear upsampling of `grid` (h, w, channels) before its column step in `band`."""
    weight1 = fraction[y]
    weight0 = _ONE - weight1
    row0 = index0[y]
    row1 = index1[y]
    for column in range(grid.shape[1]):
        for channel in range(grid.shape[2]):
            band[column, channel] = grid[row0, column, channel] * weight0 + grid[row1, column, channel] * weight1


@_compile
def _clip_unit(value):
    """Clip a float32 to [0, 1] as `np.clip(value, 0, 1)` does."""
    if value < _ZERO:
        return _ZERO
    if value > _ONE:
        return _ONE
    return value



@_compile
def _upsample_pixel(band, index0, index1, fraction, x, channel):
    """Return column `x` of a grid row from `_blend_rows`, interpolated as `rendering._upsample` does."""
    value = band[index0[x], channel] * (_ONE - fraction[x])
    value += band[index1[x], channel] * fraction[x]
    return value


@_compile
def render_rows(
    image,
    output,
    start,
    stop,
    level_of,
    levels,
    table,
    byte_table,
    use_byte_table,
    mix_weights,
    small,
    large,
    luma_blur,
    luma_weights,
    ink_weight,
    edge_gain,
    posterize_levels,
    spatial,
    spatial_active,
    grain,
    grain_weight,
    overlay_grids,
    overlay_opacity,
    overlay_kind,
    overlay_strength,
    overlay_colour,
):
    """Render output rows [start, stop) of one photo into `output`, (height, width, 3) uint8.

    Every float argument is float32, because a float64 scalar would turn the arithmetic into float64 and round
    differently from the NumPy strips.

    Args:
        image: (height, width, 3) uint8 input.
        level_of: (256,) int32 table level of each 8-bit value, used when no filter mixes the input.
        levels: table levels per axis.
        table: (levels**3, 3) float32 colours, indexed by (blue * levels + green) * levels + red.
        byte_table: `table` rounded to uint8, read instead of `table` when `use_byte_table` is set.
        mix_weights: (4,) float32: the input's weight divided by 255, then the small blur, large blur and
            posterize weights. Zero filter weights mean no filter mixes the input.
        small, large, luma_blur, spatial: grids upsampled bilinearly, each a tuple (grid (h, w, channels) float32,
            row index0, row index1, row fraction, column index0, column index1, column fraction). Row weights have
            one entry per output row, column weights one per output column. `small` and `large` are the blurred
            copies (3 channels), `luma_blur` the blurred luma for ink (1 channel), `spatial` the gain and offset
            map (6 channels).
        luma_weights: (3,) float32 BT.601 weights.
        ink_weight, edge_gain, posterize_levels: float32 scalars. An ink weight of 0 skips ink.
        grain: (height, width) float32 grain, added times `grain_weight` unless that is 0.
        overlay_grids: the grids of the blended overlays (snow, rain) in the same tuple form, stacked: the grid is
            (grids, max_h, max_w) float32 padded with zeros and each weight array has one row per grid.
        overlay_opacity: (grids,) float32 opacity of each grid within its overlay.
        overlay_kind: (grids,) int64 overlay of each grid, an index into `overlay_strength` and `overlay_colour`.
            Overlays are blended in index order.
        overlay_strength: (overlays,) float32 overlay weights clipped to [0, 1].
        overlay_colour: (overlays, 3) float32 colours that the overlays blend towards.
    """
    width = image.shape[1]
    scale = np.float32(levels - 1)
    input_factor, small_weight, large_weight, posterize_weight = mix_weights[0], mix_weights[1], mix_weights[2], mix_weights[3]
    mixes_input = small_weight != _ZERO or large_weight != _ZERO or posterize_weight != _ZERO
    uses_small = small_weight != _ZERO or posterize_weight != _ZERO
    luma_red, luma_green, luma_blue = luma_weights[0], luma_weights[1], luma_weights[2]

    small_grid, small_y0, small_y1, small_fy, small_x0, small_x1, small_fx = small
    large_grid, large_y0, large_y1, large_fy, large_x0, large_x1, large_fx = large
    luma_grid, luma_y0, luma_y1, luma_fy, luma_x0, luma_x1, luma_fx = luma_blur
    map_grid, map_y0, map_y1, map_fy, map_x0, map_x1, map_fx = spatial
    overlay_grid, overlay_y0, overlay_y1, overlay_fy, overlay_x0, overlay_x1, overlay_fx = overlay_grids
    grid_count = overlay_grid.shape[0]
    overlay_count = overlay_strength.shape[0]

    # Grid rows interpolated for the current output row, before the column step.
    small_band = np.empty((small_grid.shape[1], small_grid.shape[2]), np.float32)  # (w, 3)
    large_band = np.empty((large_grid.shape[1], large_grid.shape[2]), np.float32)  # (w, 3)
    luma_band = np.empty((luma_grid.shape[1], luma_grid.shape[2]), np.float32)  # (w, 1)
    map_band = np.empty((map_grid.shape[1], map_grid.shape[2]), np.float32)  # (map_w, 6)
    overlay_band = np.empty((grid_count, overlay_grid.shape[2]), np.float32)  # (grids, max_w)
    smooth = np.empty(3, np.float32)
    mixed = np.empty(3, np.float32)
    colour = np.empty(3, np.float32)
    alpha = np.empty(overlay_count, np.float32)

    for y in range(start, stop):
        # 1. Interpolate between grid rows once per output row.
        if uses_small:
            _blend_rows(small_grid, small_y0, small_y1, small_fy, y, small_band)
        if large_weight != _ZERO:
            _blend_rows(large_grid, large_y0, large_y1, large_fy, y, large_band)
        if ink_weight != _ZERO:
            _blend_rows(luma_grid, luma_y0, luma_y1, luma_fy, y, luma_band)
        if spatial_active:
            _blend_rows(map_grid, map_y0, map_y1, map_fy, y, map_band)
        for index in range(grid_count):
            weight1 = overlay_fy[index, y]
            weight0 = _ONE - weight1
            row0 = overlay_y0[index, y]
            row1 = overlay_y1[index, y]
            for column in range(overlay_grid.shape[2]):
                overlay_band[index, column] = (
                    overlay_grid[index, row0, column] * weight0 + overlay_grid[index, row1, column] * weight1
                )

        for x in range(width):
            # 2. Table index of the input, or of the input mixed with its filtered copies.
            if mixes_input:
                for channel in range(3):
                    mixed[channel] = np.float32(image[y, x, channel]) * input_factor
                if uses_small:
                    for channel in range(3):
                        smooth[channel] = _upsample_pixel(small_band, small_x0, small_x1, small_fx, x, channel)
                if small_weight != _ZERO:
                    for channel in range(3):
                        mixed[channel] += small_weight * smooth[channel]
                if large_weight != _ZERO:
                    for channel in range(3):
                        blurred = _upsample_pixel(large_band, large_x0, large_x1, large_fx, x, channel)
                        mixed[channel] += large_weight * blurred
                if posterize_weight != _ZERO:
                    # Quantize the luma of the clipped small blur and scale its channels by quantized / luma.
                    for channel in range(3):
                        smooth[channel] = _clip_unit(smooth[channel])
                    luma = luma_red * smooth[0] + luma_green * smooth[1] + luma_blue * smooth[2]
                    step = np.floor(luma * posterize_levels)
                    step += _HALF
                    step /= posterize_levels
                    step /= max(luma, _MIN_LUMA)
                    for channel in range(3):
                        mixed[channel] += posterize_weight * _clip_unit(smooth[channel] * step)
                red = np.int64(np.rint(_clip_unit(mixed[0]) * scale))
                green = np.int64(np.rint(_clip_unit(mixed[1]) * scale))
                blue = np.int64(np.rint(_clip_unit(mixed[2]) * scale))
            else:
                red = np.int64(level_of[image[y, x, 0]])
                green = np.int64(level_of[image[y, x, 1]])
                blue = np.int64(level_of[image[y, x, 2]])
            flat = (blue * levels + green) * levels + red

            if use_byte_table:
                for channel in range(3):
                    output[y, x, channel] = byte_table[flat, channel]
                continue

            # 3. Colour from the table, then the spatial gain and offset.
            for channel in range(3):
                colour[channel] = table[flat, channel]
            if spatial_active:
                for channel in range(3):
                    gain = _upsample_pixel(map_band, map_x0, map_x1, map_fx, x, channel)
                    offset = _upsample_pixel(map_band, map_x0, map_x1, map_fx, x, channel + 3)
                    colour[channel] = colour[channel] * (_ONE + gain) + offset

            # 4. Ink: subtract the scaled difference between the input's luma and its blur.
            if ink_weight != _ZERO:
                luma = (
                    luma_red * (np.float32(image[y, x, 0]) / _FULL_SCALE)
                    + luma_green * (np.float32(image[y, x, 1]) / _FULL_SCALE)
                    + luma_blue * (np.float32(image[y, x, 2]) / _FULL_SCALE)
                )
                blurred = _upsample_pixel(luma_band, luma_x0, luma_x1, luma_fx, x, 0)
                edge = _clip_unit(abs(luma - blurred) * edge_gain)
                for channel in range(3):
                    colour[channel] = colour[channel] - ink_weight * edge

            # 5. Grain, then each blended overlay towards its colour.
            if grain_weight != _ZERO:
                for channel in range(3):
                    colour[channel] = colour[channel] + grain_weight * grain[y, x]
            if grid_count:
                for overlay in range(overlay_count):
                    alpha[overlay] = _ZERO
                for index in range(grid_count):
                    fraction = overlay_fx[index, x]
                    value = overlay_band[index, overlay_x0[index, x]] * (_ONE - fraction)
                    value += overlay_band[index, overlay_x1[index, x]] * fraction
                    alpha[overlay_kind[index]] += value * overlay_opacity[index]
                for overlay in range(overlay_count):
                    opacity = overlay_strength[overlay] * _clip_unit(alpha[overlay])
                    for channel in range(3):
                        colour[channel] = colour[channel] + opacity * (overlay_colour[overlay, channel] - colour[channel])

            # 6. Round to 8 bits.
            for channel in range(3):
                value = np.rint(colour[channel] * _FULL_SCALE)
                output[y, x, channel] = np.uint8(min(max(value, _ZERO), _FULL_SCALE))
