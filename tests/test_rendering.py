import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hywu_cli import ops
from hywu_cli.editor import EditOperators, LiteEditorNetwork
from hywu_cli.rendering import linear_resize_weights, render_uint8


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
