import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hywu_cli
from hywu_cli import ops, rendering
from hywu_cli.editor import LUT_TABLE_LEVELS, EditOperators, LiteEditorNetwork
from hywu_cli.rendering import linear_resize_weights, render_uint8


SRC = Path(__file__).resolve().parents[1] / "src"


def random_operators(seed, scalars):
    generator = torch.Generator().manual_seed(seed)
    lut = ops.identity_lut(9)[None] + 0.08 * torch.randn(1, 3, 9, 9, 9, generator=generator)
    spatial = 0.1 * torch.randn(1, 6, 16, 16, generator=generator)
    return EditOperators(lut=lut, spatial=spatial, scalars=torch.tensor([scalars], dtype=torch.float32))


@pytest.fixture(scope="module")
def photo():
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 6, 9, generator=generator)
    image = F.interpolate(coarse, size=(203, 317), mode="bicubic", align_corners=False).clamp(0, 1)
    return (image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize(
    "scalars",
    [
        [0, 0, 0, 0, 0, 0, 0],  # colour table and spatial map only
        [0, 0, 0, 0, 0.05, 0, 0],  # film grain
        [0, 0, 0, 0, 0, 0.8, 0],  # snow
        [0, 0, 0, 0, 0, 0, 0.6],  # rain
    ],
)
def test_fast_render_matches_reference(photo, scalars):
    operators = random_operators(1, scalars)
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    editor = LiteEditorNetwork().eval()

    with torch.no_grad():
        reference = editor.render(image, operators, [4])[0].permute(1, 2, 0).numpy()
    fast = render_uint8(photo, operators, seed=4, workers=2)

    reference_u8 = np.clip(np.round(reference * 255), 0, 255)
    difference = np.abs(fast.astype(np.int16) - reference_u8.astype(np.int16))
    assert fast.shape == photo.shape
    assert fast.dtype == np.uint8
    assert difference.max() <= 1
    assert difference.mean() < 0.05


def test_fast_render_without_spatial_map_uses_byte_table(photo):
    operators = random_operators(2, [0] * 7)
    operators.spatial.zero_()
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255

    with torch.no_grad():
        reference = LiteEditorNetwork().eval().render(image, operators, [0])[0].permute(1, 2, 0).numpy()
    fast = render_uint8(photo, operators, seed=0)

    assert np.abs(fast.astype(np.int16) - np.round(reference * 255).astype(np.int16)).max() <= 1


@pytest.mark.parametrize(
    "scalars,size",
    [
        ([0.7, 0, 0, 0, 0, 0, 0], (203, 317)),  # small blur, sigma under 1 pixel: blurred at full resolution
        ([0, 0.9, 0, 0, 0, 0, 0], (203, 317)),  # large blur, sigma of 1.8 pixels: blurred on a downsampled copy
        ([0, 0, 0.8, 0.5, 0, 0, 0], (203, 317)),  # cartoon: posterize and ink
        ([0.4, -0.2, 0, 0.3, 0.05, 0.7, 0], (203, 317)),  # every kind at once
        ([0.5, 0.6, 0.5, 0.4, 0, 0, 0], (1100, 1500)),  # every filter downsampled, several strips
    ],
)
def test_fast_render_filters_match_reference(scalars, size):
    generator = torch.Generator().manual_seed(5)
    coarse = torch.rand(1, 3, 12, 15, generator=generator)
    fine = 0.15 * torch.rand(1, 3, *size, generator=generator)
    image = (F.interpolate(coarse, size=size, mode="bicubic", align_corners=False) + fine).clamp(0, 1)
    pixels = (image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    operators = random_operators(6, scalars)

    with torch.no_grad():
        reference = LiteEditorNetwork().eval().render(image, operators, [3])[0].permute(1, 2, 0).numpy()
    fast = render_uint8(pixels, operators, seed=3, workers=2)

    difference = np.abs(fast.astype(np.int16) - np.round(reference * 255).astype(np.int16))
    # Float rounding can flip a pixel on a posterize step or table cell edge into the neighbouring one; such
    # pixels must stay rare.
    assert (difference > 2).mean() < 1e-3
    assert difference.mean() < 0.05


@pytest.mark.parametrize("source,target", [(16, 203), (16, 5), (7, 7), (1, 9)])
def test_resize_weights_match_interpolate(source, target):
    field = torch.rand(1, 1, source, 1)
    expected = F.interpolate(field, size=(target, 1), mode="bilinear", align_corners=False)[0, 0, :, 0]
    index0, index1, fraction = linear_resize_weights(source, target)
    values = field[0, 0, :, 0].numpy()

    actual = values[index0] * (1 - fraction) + values[index1] * fraction

    np.testing.assert_allclose(actual, expected.numpy(), atol=1e-6)


def textured_photo(size, seed):
    """Return a smooth random photo with fine noise, (height, width, 3) uint8."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 12, 15, generator=generator)
    fine = 0.15 * torch.rand(1, 3, *size, generator=generator)
    image = (F.interpolate(coarse, size=size, mode="bicubic", align_corners=False) + fine).clamp(0, 1)
    return (image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


OPERATOR_KINDS = {
    "table": [0, 0, 0, 0, 0, 0, 0],  # spatial map zeroed below, so the byte table is used
    "spatial": [0, 0, 0, 0, 0, 0, 0],
    "small blur": [0.6, 0, 0, 0, 0, 0, 0],
    "large blur": [0, 0.8, 0, 0, 0, 0, 0],
    "posterize": [0, 0, 0.7, 0, 0, 0, 0],
    "ink": [0, 0, 0, 0.6, 0, 0, 0],
    "grain": [0, 0, 0, 0, 0.05, 0, 0],
    "snow": [0, 0, 0, 0, 0, 0.8, 0],
    "rain": [0, 0, 0, 0, 0, 0, 0.7],
    "every kind": [0.3, -0.4, 0.5, 0.4, 0.04, 0.6, 0.5],
}


# 480 x 640 blurs the small copy and the ink luma at full resolution, 700 x 1000 downsamples every blur.
@pytest.mark.parametrize("size", [(480, 640), (700, 1000)])
@pytest.mark.parametrize("kind", list(OPERATOR_KINDS))
def test_compiled_kernel_matches_numpy_strips(monkeypatch, kind, size):
    pytest.importorskip("numba")
    pixels = textured_photo(size, seed=7)
    operators = random_operators(8, OPERATOR_KINDS[kind])
    if kind == "table":
        operators.spatial.zero_()

    monkeypatch.setattr(rendering, "USE_COMPILED_KERNEL", True)
    monkeypatch.setattr(rendering, "COMPILED_MIN_PIXELS", 0)
    compiled = render_uint8(pixels, operators, seed=5, workers=2)
    compiled_used = rendering._kernels
    monkeypatch.setattr(rendering, "USE_COMPILED_KERNEL", False)
    numpy_strips = render_uint8(pixels, operators, seed=5, workers=2)

    difference = np.abs(compiled.astype(np.int16) - numpy_strips.astype(np.int16))
    assert compiled_used
    assert difference.max() <= 1
    # NumPy resizes the spatial map's columns and the colour table with matrix products, whose sums can round
    # differently. Every other step runs the same float32 operations in the same order.
    assert (difference > 0).mean() < 1e-4
    if kind == "table":
        # The kernel interpolates the small table per pixel instead of reading torch's resampled table. Products
        # in another order can round differently, so a few pixels per million may land one level apart.
        from_torch_table = torch_dense_table_lookup(pixels, operators.lut)
        difference = np.abs(compiled.astype(np.int16) - from_torch_table.astype(np.int16))
        assert difference.max() <= 1
        assert (difference > 0).mean() < 2e-5


def test_compiled_grain_matches_full_map(monkeypatch):
    # A shorter side of 1,300 pixels gives grain cells over one pixel: the kernel upsamples the grain's grid and
    # measures its standard deviation itself, while the NumPy strips draw `ops.grain_layer` in full.
    pytest.importorskip("numba")
    pixels = textured_photo((1300, 1400), seed=2)
    operators = random_operators(4, OPERATOR_KINDS["grain"])
    monkeypatch.setattr(rendering, "COMPILED_MIN_PIXELS", 0)

    compiled = render_uint8(pixels, operators, seed=9, workers=2)
    monkeypatch.setattr(rendering, "USE_COMPILED_KERNEL", False)
    numpy_strips = render_uint8(pixels, operators, seed=9, workers=2)

    difference = np.abs(compiled.astype(np.int16) - numpy_strips.astype(np.int16))
    assert ops.grain_grid(9, 1300, 1400).shape == (1250, 1347)
    assert difference.max() <= 1
    assert (difference > 0).mean() < 1e-4


@pytest.mark.parametrize(
    "shape,sigma", [((334, 445, 3), 1.0), ((41, 57, 3), 1.7), ((5, 7, 3), 2.0), ((3, 40, 1), 1.5)]
)
def test_gaussian_blurs_match_torch(shape, sigma):
    # The last two shapes are shorter than the radius on one side, so every version repeats the edge.
    kernels = pytest.importorskip("hywu_cli.rendering_kernels")
    pixels = np.random.default_rng(1).random(shape, dtype=np.float32)
    kernel = ops.gaussian_kernel(sigma).numpy()
    expected = ops.gaussian_blur_pixels(torch.from_numpy(pixels).permute(2, 0, 1)[None], sigma)[0].permute(1, 2, 0)

    compiled = kernels.gaussian_blur(pixels, kernel)
    numpy_version = rendering._gaussian_blur(pixels, kernel)

    np.testing.assert_allclose(compiled, expected.numpy(), atol=1e-6)
    assert np.array_equal(compiled, numpy_version)


def torch_dense_table_lookup(pixels, lut):
    """Look every pixel up in the table `F.interpolate` resamples to `LUT_TABLE_LEVELS` levels, rounded to 8 bits."""
    levels = LUT_TABLE_LEVELS
    # (3, levels, levels, levels)
    dense = F.interpolate(lut, size=(levels,) * 3, mode="trilinear", align_corners=True)[0]
    index = torch.round(torch.from_numpy(pixels).long() / 255 * (levels - 1)).long()  # (height, width, 3)
    colour = dense[:, index[..., 2], index[..., 1], index[..., 0]].permute(1, 2, 0)  # (height, width, 3)
    return (colour * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def test_dense_table_matches_interpolate():
    lut = random_operators(3, [0] * 7).lut
    levels = LUT_TABLE_LEVELS
    expected = F.interpolate(lut, size=(levels,) * 3, mode="trilinear", align_corners=True)

    table = rendering._dense_table(lut)  # (levels**3, 3)

    np.testing.assert_allclose(table, expected[0].permute(1, 2, 3, 0).reshape(-1, 3).numpy(), atol=1e-6)


@pytest.mark.parametrize("size,factor", [((203, 317), 2), ((1001, 1503), 7), ((1100, 1500), 9), ((64, 50), 27)])
def test_box_means_match_pillow_reduce(size, factor):
    kernels = pytest.importorskip("hywu_cli.rendering_kernels")
    pixels = np.random.default_rng(factor).integers(0, 256, (*size, 3), dtype=np.uint8)
    filters = rendering._Filters(pixels, torch.tensor([0, 0, 0, 0.5, 0, 0, 0]))  # no kernels: Pillow's reduce

    expected = filters._box_reduce(factor)
    actual = kernels.box_means(pixels, factor)

    np.testing.assert_array_equal(actual, expected)


def test_render_without_numba_uses_numpy_strips(monkeypatch, caplog, photo):
    operators = random_operators(3, OPERATOR_KINDS["every kind"])
    monkeypatch.setattr(rendering, "USE_COMPILED_KERNEL", False)
    expected = render_uint8(photo, operators, seed=2)
    monkeypatch.setattr(rendering, "USE_COMPILED_KERNEL", True)
    monkeypatch.setattr(rendering, "COMPILED_MIN_PIXELS", 0)
    monkeypatch.setattr(rendering, "_kernels", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    monkeypatch.delitem(sys.modules, "hywu_cli.rendering_kernels", raising=False)
    monkeypatch.delattr(hywu_cli, "rendering_kernels", raising=False)

    with caplog.at_level(logging.DEBUG, logger="hywu_cli.rendering"):
        first = render_uint8(photo, operators, seed=2)
        second = render_uint8(photo, operators, seed=2)

    assert rendering._kernels is False
    assert np.array_equal(first, expected)
    assert np.array_equal(second, expected)
    assert len([record for record in caplog.records if "numba is not available" in record.message]) == 1


RENDER_SCRIPT = textwrap.dedent(
    """
    import hashlib

    import numpy as np
    import torch

    from hywu_cli import ops, rendering
    from hywu_cli.editor import EditOperators

    generator = torch.Generator().manual_seed(1)
    lut = ops.identity_lut(9)[None] + 0.08 * torch.randn(1, 3, 9, 9, 9, generator=generator)
    spatial = 0.1 * torch.randn(1, 6, 16, 16, generator=generator)
    scalars = torch.tensor([[0.3, -0.4, 0.5, 0.4, 0.04, 0.6, 0.5]])
    pixels = np.random.default_rng(1).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    assert rendering._load_kernels() is not None, "numba did not import"
    print("pending" if rendering.compiled_kernel_pending(rendering.COMPILED_MIN_PIXELS) else "cached")
    rendering.COMPILED_MIN_PIXELS = 0
    output = rendering.render_uint8(pixels, EditOperators(lut, spatial, scalars), seed=1, workers=2)
    print(hashlib.sha256(output.tobytes()).hexdigest())
    """
)


def render_in_subprocess(**environment) -> tuple[str, str]:
    """Run RENDER_SCRIPT in a fresh interpreter with extra environment variables.

    Returns whether the kernel was "pending" (to be compiled) or "cached" before the render, and the output's hash.
    """
    env = {**os.environ, "PYTHONPATH": str(SRC), **environment}
    result = subprocess.run(
        [sys.executable, "-c", RENDER_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    state, digest = result.stdout.strip().splitlines()[-2:]
    return state, digest


@pytest.mark.slow
def test_kernel_cache_in_user_cache_folder(tmp_path):
    pytest.importorskip("numba")
    # Leaving out numba's in-tree locator is what happens when the package folder is read-only.
    environment = {"NUMBA_CACHE_LOCATOR_CLASSES": "UserWideCacheLocator", "XDG_CACHE_HOME": str(tmp_path)}

    cold_state, cold = render_in_subprocess(**environment)
    cached = sorted(path.name for path in (tmp_path / "numba").rglob("*.nbi"))
    warm_state, warm = render_in_subprocess(**environment)

    assert any(name.startswith("rendering_kernels.render_rows") for name in cached)
    assert (cold_state, warm_state) == ("pending", "cached")
    assert warm == cold


@pytest.mark.slow
def test_kernel_compiles_without_writable_cache(tmp_path):
    pytest.importorskip("numba")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    # The only locator tried needs a cache folder inside a regular file, so numba finds no cache location.
    environment = {
        "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator",
        "NUMBA_CACHE_DIR": str(blocker / "cache"),
    }
    _, reference = render_in_subprocess(XDG_CACHE_HOME=str(tmp_path / "user-cache"))

    _, uncached = render_in_subprocess(**environment)

    assert uncached == reference
