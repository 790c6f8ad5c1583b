import numpy as np
import torch
import torch.nn.functional as F

from hywu_cli import ops


def smooth_image(height=96, width=128, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 8, generator=generator)
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


def test_blur_is_resolution_independent():
    large = smooth_image(384, 512)
    small = F.interpolate(large, size=(96, 128), mode="area")

    blurred_large = F.interpolate(ops.gaussian_blur(large, 0.02), size=(96, 128), mode="area")
    blurred_small = ops.gaussian_blur(small, 0.02)

    assert (blurred_large - blurred_small).abs().mean() < 0.01


def test_blur_preserves_mean_and_constant():
    image = smooth_image()
    constant = torch.full((1, 3, 50, 70), 0.25)

    assert torch.allclose(ops.gaussian_blur(constant, 0.05), constant, atol=1e-5)
    assert abs(ops.gaussian_blur(image, 0.01).mean() - image.mean()) < 2e-3


def test_identity_lut_maps_colours_to_themselves():
    image = torch.rand(2, 3, 17, 23)
    lut = ops.identity_lut(9).expand(2, -1, -1, -1, -1)

    trilinear = ops.apply_color_lut(image, lut)
    table = ops.apply_color_lut(image, lut, table_levels=128)

    torch.testing.assert_close(trilinear, image, atol=1e-5, rtol=0)
    # Nearest lookup in a 128-level table is off by at most half a level.
    assert (table - image).abs().max() <= 0.5 / 127 + 1e-6


def test_lut_channel_order():
    lut = ops.identity_lut(5).clone()[None]
    lut[:, 0] = 1 - lut[:, 0]  # invert red only
    image = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)

    out = ops.apply_color_lut(image, lut)

    torch.testing.assert_close(out.flatten(), torch.tensor([0.8, 0.5, 0.9]), atol=1e-5, rtol=0)


def test_overlays_reproducible_by_seed():
    for layer in (ops.snow_layer, ops.rain_layer, ops.grain_layer):
        first = layer([7, 8], 120, 160)
        again = layer([7, 8], 120, 160)
        other = layer([9], 120, 160)

        assert first.shape == (2, 1, 120, 160)
        assert torch.equal(first, again), layer.__name__
        assert not torch.equal(first[:1], first[1:]), layer.__name__
        assert not torch.equal(first[:1], other), layer.__name__


def test_snow_and_rain_are_visible_sparse_alpha():
    snow = ops.snow_layer([1], 600, 800)
    rain = ops.rain_layer([1], 600, 800)

    for alpha in (snow, rain):
        assert alpha.min() >= 0
        assert alpha.max() <= 1
        covered = (alpha > 0.3).float().mean().item()
        assert 0.005 < covered < 0.3


def test_grain_zero_mean_unit_std():
    grain = ops.grain_layer([3], 400, 600)

    assert abs(grain.mean().item()) < 0.05
    assert abs(grain.std().item() - 1) < 0.05


def test_posterize_has_few_luma_levels():
    image = smooth_image(64, 64)
    flat = ops.posterize(image)

    levels = torch.unique(torch.round(ops.luma(flat) * 1000))
    assert flat.shape == image.shape
    assert len(levels) < 200  # hue is kept, so luma is not exactly quantized after clamping, but it is coarse
    assert (flat - image).abs().mean() < 0.15


def test_edges_zero_on_flat_image():
    flat = torch.full((1, 3, 40, 40), 0.6)
    edges = ops.edge_magnitude(flat)

    assert edges.shape == (1, 1, 40, 40)
    assert edges.abs().max() < 1e-5


def test_smooth_map_matches_numpy_reference():
    torch.manual_seed(0)
    maps = torch.randn(2, 6, 16, 16)
    constant = torch.full((1, 3, 16, 16), 0.25)

    smoothed = ops.smooth_map(maps)

    taps = np.array([1, 4, 6, 4, 1], np.float64) / 16
    padded = np.pad(maps.double().numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    rows = sum(taps[k] * padded[..., :, k : k + 16] for k in range(5))
    expected = sum(taps[k] * rows[..., k : k + 16, :] for k in range(5))
    assert smoothed.shape == maps.shape
    assert np.allclose(smoothed.double().numpy(), expected, atol=1e-6)
    assert torch.allclose(ops.smooth_map(constant), constant)


def test_smooth_map_softens_frame_step():
    """A map with a dark two-cell frame, as the shipped editor predicts for a vignette, gets a gradual fall-off."""
    frame = torch.zeros(1, 1, 16, 16)
    frame[..., :2, :] = frame[..., -2:, :] = frame[..., :, :2] = frame[..., :, -2:] = -0.2

    smoothed = ops.smooth_map(frame)[0, 0, 8]

    assert smoothed[0] < smoothed[1] < smoothed[2] < smoothed[3] <= 0
    assert (smoothed[1:4] - smoothed[0:3]).max() < (frame[0, 0, 8, 2] - frame[0, 0, 8, 1]).item()
