"""Compiled per-pixel kernel of `hywu_cli.rendering`, built with numba.

`render_rows` renders a range of output rows from the 8-bit input to the 8-bit output one row at a time: table
index, colour from the dense table, spatial gain and offset, ink, overlays, and rounding to 8 bits. Each step is a
loop over one row whose buffers stay in the CPU cache, so no full-size temporary is written. It runs without the
GIL, so `hywu_cli.rendering` calls it from a thread pool, one strip per call. `box_means` computes the block means
that the blurred copies start from. Importing this module imports numba, so `hywu_cli.rendering` imports it on
first use only and keeps its NumPy strips for when numba is missing.

The kernel repeats the float32 operations of the NumPy strips in the same order, so both paths give the same bytes.
The one exception is the spatial map, which NumPy resizes with a matrix product: its sums can round differently, and
a pixel whose value falls close to a rounding boundary can then differ by one level.

Compiled code is cached on disk (`cache=True`): in `NUMBA_CACHE_DIR` when it is set, else in the package's
`__pycache__` when that is writable, else in numba's folder of the user cache (under `XDG_CACHE_HOME` or
`~/.cache`). The cache key is a hash of this file only. So every constant that comes from another module (luma
weights, edge gain, posterize levels) is an argument, because numba would freeze a global's value into the cached
code.

NOTE: with an empty cache the first render of a large photo compiles for about 7 s (numba 0.68.1 on 2 cores: a
12-megapixel `hywu edit` took 9.5 s, and 2.4 s once cached). `rendering.compiled_kernel_pending` lets the command
line announce it. With a warm cache, numba's start-up still adds about 0.6 s to the first render of a process.
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
def _clip_unit(value):
    """Clip a float32 to [0, 1] as `np.clip(value, 0, 1)` does."""
    if value < _ZERO:
        return _ZERO
    if value > _ONE:
        return _ONE
    return value


@_compile
def _to_byte(value):
    """Round a float32 in [0, 1] units to uint8 as `np.clip(np.round(value * 255), 0, 255)` does."""
    value = np.rint(value * _FULL_SCALE)
    return np.uint8(min(max(value, _ZERO), _FULL_SCALE))


@_compile
def _upsample(source, y, row, cache, cached_rows):
    """Store output row `y` of the bilinear upsampling of a grid in `row`, (width, channels).

    `source` is (grid (h, w, channels), row index0, row index1, row fraction, column index0, column index1,
    column fraction). Each grid row is first resized to the output's width, then the two grid rows around `y` are
    mixed. Consecutive output rows mostly fall between the same two grid rows, so the two resized rows are kept in
    `cache` (2, width, channels) and `cached_rows` (2,) int64 names the grid rows they hold (-1 for none). On a
    12-megapixel photo that resizes each grid row once per strip instead of once per output row. `rendering._upsample`
    mixes the grid rows first, so the two can round differently in the last bit.
    """
    grid, index_y0, index_y1, fraction_y, index_x0, index_x1, fraction_x = source
    for slot, grid_row in ((0, index_y0[y]), (1, index_y1[y])):
        if cached_rows[slot] == grid_row:
            continue
        other = 1 - slot
        if cached_rows[other] == grid_row:
            cache[slot, :, :] = cache[other]
        else:
            values = grid[grid_row]
            resized = cache[slot]
            for x in range(row.shape[0]):
                weight1 = fraction_x[x]
                weight0 = _ONE - weight1
                column0 = index_x0[x]
                column1 = index_x1[x]
                for channel in range(row.shape[1]):
                    value = values[column0, channel] * weight0
                    value += values[column1, channel] * weight1
                    resized[x, channel] = value
        cached_rows[slot] = grid_row

    weight1 = fraction_y[y]
    weight0 = _ONE - weight1
    upper = cache[0].reshape(-1)
    lower = cache[1].reshape(-1)
    values = row.reshape(-1)
    for index in range(values.shape[0]):
        values[index] = upper[index] * weight0 + lower[index] * weight1


@_compile
def _empty_cache(width, channels):
    """Return the `cache` and `cached_rows` arguments of `_upsample` for a row of `width` pixels, holding nothing."""
    return np.empty((2, width, channels), np.float32), np.full(2, -1, np.int64)


@_compile
def _mirror(index, length):
    """Return the index that reflect padding reads for `index` in [-radius, length + radius), as torch's "reflect"
    (edge not repeated) does, or as its "replicate" when the side is no longer than the radius."""
    if length == 1:
        return 0
    while index < 0 or index >= length:
        if index < 0:
            index = -index
        if index >= length:
            index = 2 * (length - 1) - index
    return index


@_compile
def gaussian_blur(pixels, kernel):
    """Return `ops.gaussian_blur_pixels` of (height, width, channels) float32 `pixels` with the 1-D `kernel`,
    first along rows, then along columns, up to float rounding. Sides no longer than the radius are padded by
    repeating the edge, as `ops.gaussian_blur_pixels` does."""
    height, width, channels = pixels.shape
    radius = kernel.shape[0] // 2
    replicate = min(height, width) <= radius
    across = np.zeros_like(pixels)
    for y in range(height):
        for tap in range(kernel.shape[0]):
            weight = kernel[tap]
            for x in range(width):
                source = x + tap - radius
                source = min(max(source, 0), width - 1) if replicate else _mirror(source, width)
                for channel in range(channels):
                    across[y, x, channel] += weight * pixels[y, source, channel]
    blurred = np.zeros_like(pixels)
    for y in range(height):
        for tap in range(kernel.shape[0]):
            weight = kernel[tap]
            source = y + tap - radius
            source = min(max(source, 0), height - 1) if replicate else _mirror(source, height)
            row = across[source].reshape(-1)
            out = blurred[y].reshape(-1)
            for index in range(width * channels):
                out[index] += weight * row[index]
    return blurred


@_compile
def grid_sums(source, start, stop):
    """Return the sum and the sum of squares, in float64, of output rows [start, stop) of a one-channel grid's
    bilinear upsampling (`source` as in `_upsample`), for the grain's standard deviation."""
    width = source[4].shape[0]
    row = np.empty((width, 1), np.float32)
    cache, cached_rows = _empty_cache(width, 1)
    total = 0.0
    squares = 0.0
    values = row.reshape(-1)
    for y in range(start, stop):
        _upsample(source, y, row, cache, cached_rows)
        # Four float64 sums per row run in parallel in the CPU instead of waiting on each other.
        sum_lanes = np.zeros(4, np.float64)
        square_lanes = np.zeros(4, np.float64)
        for x in range(width):
            value = np.float64(values[x])
            sum_lanes[x & 3] += value
            square_lanes[x & 3] += value * value
        total += sum_lanes.sum()
        squares += square_lanes.sum()
    return total, squares


@_compile
def box_means(image, factor):
    """Return the mean of every `factor` x `factor` block of `image` (height, width, 3) uint8 divided by 255, as
    (ceil(height / factor), ceil(width / factor), 3) float32. Blocks at the far edges may be partial.

    Equals `rendering._Filters._box_reduce`, which uses Pillow's `reduce` on float channels, bit for bit:
    the integer sums are exact, and each mean is the sum times the float64 reciprocal of the pixel count, rounded
    to float32. `tests/test_rendering.py` checks this against the installed Pillow.
    """
    height, width, channels = image.shape
    rows = (height + factor - 1) // factor
    columns = (width + factor - 1) // factor
    means = np.empty((rows, columns, channels), np.float32)
    box_means_rows(image, factor, means, 0, rows)
    return means


@_compile
def box_means_rows(image, factor, means, first_block_row, stop_block_row):
    """Store block rows [first_block_row, stop_block_row) of `box_means(image, factor)` in `means`, so threads can
    share the work."""
    height, width, channels = image.shape
    columns = means.shape[1]
    column_sums = np.empty(width * channels, np.int32)  # (width * 3,) sums over the rows of one block row

    for block_row in range(first_block_row, stop_block_row):
        first = block_row * factor
        last = min(first + factor, height)
        column_sums[:] = 0
        for y in range(first, last):
            pixels = image[y].reshape(-1)
            for index in range(width * channels):
                column_sums[index] += pixels[index]

        for block in range(columns):
            start = block * factor
            stop = min(start + factor, width)
            count = (last - first) * (stop - start)
            for channel in range(channels):
                total = 0
                for x in range(start, stop):
                    total += column_sums[x * channels + channel]
                means[block_row, block, channel] = np.float32(total * (1.0 / count)) / _FULL_SCALE


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
    gain,
    offset,
    spatial_active,
    grain,
    grain_std,
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
        small, large, luma_blur, gain, offset: grids upsampled bilinearly, each a tuple (grid (h, w, channels)
            float32, row index0, row index1, row fraction, column index0, column index1, column fraction). Row
            weights have one entry per output row, column weights one per output column. `small` and `large` are
            the blurred copies, `luma_blur` the blurred luma for ink (1 channel), `gain` and `offset` the halves
            of the spatial map (3 channels each).
        luma_weights: (3,) float32 BT.601 weights.
        ink_weight, edge_gain, posterize_levels: float32 scalars. An ink weight of 0 skips ink.
        spatial_active: whether to apply `gain` and `offset`.
        grain: the grain's grid (1 channel) in the same tuple form. Its upsampled value divided by `grain_std`
            and times `grain_weight` is added, unless that weight is 0.
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
    input_factor = mix_weights[0]
    small_weight, large_weight, posterize_weight = mix_weights[1], mix_weights[2], mix_weights[3]
    mixes_input = small_weight != _ZERO or large_weight != _ZERO or posterize_weight != _ZERO
    uses_small = small_weight != _ZERO or posterize_weight != _ZERO
    luma_red, luma_green, luma_blue = luma_weights[0], luma_weights[1], luma_weights[2]
    overlay_grid, overlay_y0, overlay_y1, overlay_fy, overlay_x0, overlay_x1, overlay_fx = overlay_grids
    grid_count = overlay_grid.shape[0]
    overlay_count = overlay_strength.shape[0]

    # Buffers for one output row. Each step below is a simple loop over the row: on a 12-megapixel photo that ran
    # about 20% faster than one loop doing every step per pixel.
    flat = np.empty(width, np.int64)
    table_levels = np.empty(width * 3, np.int32)  # int32: AVX2 converts float32 to int32 in vectors, not to int64
    mixed = np.empty((width, 3), np.float32)
    mixed_values = mixed.reshape(-1)
    colour = np.empty((width, 3), np.float32)
    small_row = np.empty((width, 3), np.float32)
    large_row = np.empty((width, 3), np.float32)
    luma_row = np.empty((width, 1), np.float32)
    gain_row = np.empty((width, 3), np.float32)
    offset_row = np.empty((width, 3), np.float32)
    grid_row = np.empty((width, 1), np.float32)
    alpha = np.empty((overlay_count, width), np.float32)
    small_cache, small_rows = _empty_cache(width, 3)
    large_cache, large_rows = _empty_cache(width, 3)
    luma_cache, luma_rows = _empty_cache(width, 1)
    grain_row = np.empty((width, 1), np.float32)
    grain_cache, grain_rows = _empty_cache(width, 1)
    gain_cache, gain_rows = _empty_cache(width, 3)
    offset_cache, offset_rows = _empty_cache(width, 3)
    overlay_cache = np.empty((grid_count, 2, width, 1), np.float32)
    overlay_rows = np.full((grid_count, 2), -1, np.int64)

    colour_values = colour.reshape(-1)
    small_values = small_row.reshape(-1)
    large_values = large_row.reshape(-1)
    gain_values = gain_row.reshape(-1)
    offset_values = offset_row.reshape(-1)

    # Loops over `*_values`, the rows' flat views, run over width * 3 values so that they compile to vector code.
    for y in range(start, stop):
        pixels = image[y]  # (width, 3)
        pixel_values = pixels.reshape(-1)

        # 1. Table index of the input, or of the input mixed with its filtered copies.
        if mixes_input:
            for index in range(width * 3):
                mixed_values[index] = np.float32(pixel_values[index]) * input_factor
            if uses_small:
                _upsample(small, y, small_row, small_cache, small_rows)
            if small_weight != _ZERO:
                for index in range(width * 3):
                    mixed_values[index] += small_weight * small_values[index]
            if large_weight != _ZERO:
                _upsample(large, y, large_row, large_cache, large_rows)
                for index in range(width * 3):
                    mixed_values[index] += large_weight * large_values[index]
            if posterize_weight != _ZERO:
                # Quantize the luma of the clipped small blur and scale its channels by quantized / luma.
                for x in range(width):
                    red = _clip_unit(small_row[x, 0])
                    green = _clip_unit(small_row[x, 1])
                    blue = _clip_unit(small_row[x, 2])
                    luma = luma_red * red + luma_green * green + luma_blue * blue
                    step = np.floor(luma * posterize_levels)
                    step += _HALF
                    step /= posterize_levels
                    step /= max(luma, _MIN_LUMA)
                    mixed[x, 0] += posterize_weight * _clip_unit(red * step)
                    mixed[x, 1] += posterize_weight * _clip_unit(green * step)
                    mixed[x, 2] += posterize_weight * _clip_unit(blue * step)
            for index in range(width * 3):
                table_levels[index] = np.int32(np.rint(_clip_unit(mixed_values[index]) * scale))
            for x in range(width):
                red_level = table_levels[3 * x]
                green_level = table_levels[3 * x + 1]
                blue_level = table_levels[3 * x + 2]
                flat[x] = (blue_level * levels + green_level) * levels + red_level
        else:
            for x in range(width):
                red_level = np.int64(level_of[pixels[x, 0]])
                green_level = np.int64(level_of[pixels[x, 1]])
                blue_level = np.int64(level_of[pixels[x, 2]])
                flat[x] = (blue_level * levels + green_level) * levels + red_level

        if use_byte_table:
            for x in range(width):
                for channel in range(3):
                    output[y, x, channel] = byte_table[flat[x], channel]
            continue

        # 2. Colour from the table, then the spatial gain and offset.
        for x in range(width):
            for channel in range(3):
                colour[x, channel] = table[flat[x], channel]
        if spatial_active:
            _upsample(gain, y, gain_row, gain_cache, gain_rows)
            _upsample(offset, y, offset_row, offset_cache, offset_rows)
            for index in range(width * 3):
                colour_values[index] = colour_values[index] * (_ONE + gain_values[index]) + offset_values[index]

        # 3. Ink: subtract the scaled difference between the input's luma and its blur.
        if ink_weight != _ZERO:
            _upsample(luma_blur, y, luma_row, luma_cache, luma_rows)
            for x in range(width):
                luma = (
                    luma_red * (np.float32(pixels[x, 0]) / _FULL_SCALE)
                    + luma_green * (np.float32(pixels[x, 1]) / _FULL_SCALE)
                    + luma_blue * (np.float32(pixels[x, 2]) / _FULL_SCALE)
                )
                ink = ink_weight * _clip_unit(abs(luma - luma_row[x, 0]) * edge_gain)
                for channel in range(3):
                    colour[x, channel] = colour[x, channel] - ink

        # 4. Grain, then each blended overlay towards its colour.
        if grain_weight != _ZERO:
            _upsample(grain, y, grain_row, grain_cache, grain_rows)
            for x in range(width):
                noise = grain_weight * (grain_row[x, 0] / grain_std)
                for channel in range(3):
                    colour[x, channel] = colour[x, channel] + noise
        alpha[:] = _ZERO
        for index in range(grid_count):
            grid = (
                overlay_grid[index, :, :, np.newaxis],
                overlay_y0[index],
                overlay_y1[index],
                overlay_fy[index],
                overlay_x0[index],
                overlay_x1[index],
                overlay_fx[index],
            )
            _upsample(grid, y, grid_row, overlay_cache[index], overlay_rows[index])
            kind = overlay_kind[index]
            opacity = overlay_opacity[index]
            for x in range(width):
                alpha[kind, x] += grid_row[x, 0] * opacity
        for overlay in range(overlay_count):
            strength = overlay_strength[overlay]
            for x in range(width):
                opacity = strength * _clip_unit(alpha[overlay, x])
                for channel in range(3):
                    target = overlay_colour[overlay, channel]
                    colour[x, channel] = colour[x, channel] + opacity * (target - colour[x, channel])

        # 5. Round to 8 bits.
        output_values = output[y].reshape(-1)
        for index in range(width * 3):
            output_values[index] = _to_byte(colour_values[index])
