"""Tests for hywu_cli.imageio: loading every mode as upright RGB, guards against bad files, atomic saving."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile

from hywu_cli import imageio
from hywu_cli.errors import HywuError, HywuWarning, InvalidImageError, OutputPathError


RED = (255, 0, 0)
WHITE = (255, 255, 255)


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def write_oriented_jpeg(path: Path, orientation: int = 6) -> None:
    """Write a 40x20 JPEG (as stored) whose top-left 10x10 block is red, with an EXIF Orientation tag."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    """Write a PNG whose header declares width x height pixels but which contains only a few KB of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    data = zlib.compress(b"\x00" * (width + 1) * 4)  # four rows of zeros, far fewer than declared
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
    )


# --- orientation ---------------------------------------------------------------------------------------------


def test_orientation_6_loads_upright(tmp_path):
    path = tmp_path / "rotated.jpg"
    write_oriented_jpeg(path, orientation=6)

    loaded = imageio.load_image(path)

    assert loaded.image.size == (20, 40)
    assert loaded.stored_size == (40, 20)
    assert loaded.orientation == 6
    # Orientation 6 means "rotate 90 degrees clockwise to display", so the stored top-left goes top-right.
    assert close_to(loaded.image.getpixel((15, 5)), RED)
    assert not close_to(loaded.image.getpixel((5, 5)), RED)


def test_upright_turns_only_rotated_images(tmp_path):
    plain = Image.new("RGB", (40, 20), RED)
    path = tmp_path / "rotated.jpg"
    write_oriented_jpeg(path, orientation=6)

    with Image.open(path) as rotated:
        turned = imageio.upright(rotated)

    assert imageio.upright(plain) is plain
    assert turned.size == (20, 40)
    assert close_to(turned.getpixel((15, 5)), RED)


# --- conversion to and from NumPy ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 48), (1731, 1301)])  # under and over PARALLEL_CONVERSION_PIXELS
def test_array_conversion_round_trips(size):
    np = pytest.importorskip("numpy")
    width, height = size
    pixels = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected_parallel = width * height >= imageio.PARALLEL_CONVERSION_PIXELS

    image = imageio.array_to_image(pixels, workers=3)
    array = imageio.image_to_array(image, workers=3)

    assert expected_parallel == (size == (1731, 1301))
    assert image.mode == "RGB"
    assert image.size == size
    assert np.array_equal(np.asarray(image), pixels)
    assert array.shape == (height, width, 3)
    assert array.dtype == np.uint8
    assert np.array_equal(array, pixels)


@pytest.mark.parametrize("shape,dtype", [((3000, 1000, 4), "uint8"), ((3000, 1000, 3), "float32"), ((20, 30), "uint8")])
def test_array_to_image_rejects_other_arrays(shape, dtype):
    np = pytest.importorskip("numpy")

    with pytest.raises(ValueError, match=r"expected a \(height, width, 3\) uint8 array"):
        imageio.array_to_image(np.zeros(shape, dtype=dtype))


def test_image_to_array_rejects_other_modes():
    with pytest.raises(ValueError, match="mode L"):
        imageio.image_to_array(Image.new("L", (4, 4)))


def test_save_strips_stale_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    write_oriented_jpeg(path, orientation=6)
    loaded = imageio.load_image(path)

    output = imageio.save_image(loaded.image, tmp_path / "out.jpg", metadata={"instruction": "x"}, source=loaded)

    with Image.open(output) as saved:
        assert ExifTags.Base.Orientation not in saved.getexif()
        assert saved.size == (20, 40)
    reloaded = imageio.load_image(output)
    assert reloaded.image.size == (20, 40)
    assert close_to(reloaded.image.getpixel((15, 5)), RED)


def test_save_carries_camera_exif(tmp_path):
    path = tmp_path / "camera.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "TestCam"
    exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    exif_ifd[ExifTags.Base.ExifImageWidth] = 40
    exif_ifd[ExifTags.Base.ExifImageHeight] = 20
    Image.new("RGB", (40, 20)).save(path, exif=exif.tobytes())
    loaded = imageio.load_image(path)

    output = imageio.save_image(loaded.image, tmp_path / "out.jpg", metadata={"instruction": "x"}, source=loaded)

    with Image.open(output) as saved:
        carried = saved.getexif()
    assert carried[ExifTags.Base.Make] == "TestCam"
    assert ExifTags.Base.Orientation not in carried
    assert ExifTags.Base.ExifImageWidth not in carried.get_ifd(ExifTags.IFD.Exif)


# --- mode conversion -----------------------------------------------------------------------------------------


def test_rgba_transparent_red_becomes_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (0, 255, 0, 255))
    image.putpixel((0, 0), (255, 0, 0, 0))  # red hidden under alpha 0
    image.putpixel((1, 0), (0, 0, 255, 128))  # half-transparent blue
    path = tmp_path / "alpha.png"
    image.save(path)

    loaded = imageio.load_image(path)

    assert loaded.image.mode == "RGB"
    assert loaded.mode == "RGBA"
    assert loaded.image.getpixel((0, 0)) == WHITE
    assert close_to(loaded.image.getpixel((1, 0)), (127, 127, 255), tolerance=2)
    assert loaded.image.getpixel((2, 2)) == (0, 255, 0)


def test_la_transparent_pixel_becomes_white(tmp_path):
    image = Image.new("LA", (3, 3), (40, 255))
    image.putpixel((0, 0), (0, 0))
    path = tmp_path / "la.png"
    image.save(path)

    loaded = imageio.load_image(path)

    assert loaded.image.getpixel((0, 0)) == WHITE
    assert loaded.image.getpixel((1, 1)) == (40, 40, 40)


def test_palette_transparency_becomes_white(tmp_path):
    image = Image.new("P", (3, 3), 1)
    image.putpalette([255, 0, 0, 0, 128, 0] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)  # palette index 0 is red and marked transparent
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)

    loaded = imageio.load_image(path)

    assert loaded.image.getpixel((0, 0)) == WHITE
    assert loaded.image.getpixel((1, 1)) == (0, 128, 0)


def test_grayscale_png_loads_as_rgb(tmp_path):
    image = Image.new("L", (5, 4), 77)
    path = tmp_path / "gray.png"
    image.save(path)

    loaded = imageio.load_image(path)

    assert loaded.image.mode == "RGB"
    assert loaded.image.getpixel((2, 2)) == (77, 77, 77)


def test_16bit_png_scaled_not_clipped(tmp_path):
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((65535, 32768, 0)):
        image.putpixel((x, 0), value)
    path = tmp_path / "deep.png"
    image.save(path)

    loaded = imageio.load_image(path)

    assert loaded.mode.startswith("I")
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.image.getpixel((1, 0)) == (128, 128, 128)
    assert loaded.image.getpixel((2, 0)) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I;16N", "I"])
def test_16bit_modes_scaled(mode):
    image = Image.new(mode, (2, 1))
    image.putpixel((0, 0), 65535)
    image.putpixel((1, 0), 32768)

    rgb = imageio.convert_to_rgb(image)

    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (128, 128, 128)


def test_32bit_integer_outside_16bit_range_stretched():
    image = Image.new("I", (2, 1))
    image.putpixel((0, 0), -1000)
    image.putpixel((1, 0), 200_000)

    rgb = imageio.convert_to_rgb(image)

    assert rgb.getpixel((0, 0)) == (0, 0, 0)
    assert rgb.getpixel((1, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("values", "expected"), [((0.0, 0.5), (0, 128)), ((0.0, 200.0), (0, 200)), ((-5.0, 995.0), (0, 255))]
)
def test_float_mode_scaled(values, expected):
    image = Image.new("F", (2, 1))
    image.putpixel((0, 0), values[0])
    image.putpixel((1, 0), values[1])

    rgb = imageio.convert_to_rgb(image)

    assert rgb.getpixel((0, 0))[0] == expected[0]
    assert rgb.getpixel((1, 0))[0] == expected[1]


def test_cmyk_jpeg_loads_as_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=95)

    loaded = imageio.load_image(path)

    assert loaded.mode == "CMYK"
    assert loaded.image.mode == "RGB"
    assert close_to(loaded.image.getpixel((4, 4)), RED, tolerance=20)


def test_one_bit_png_loads_as_rgb(tmp_path):
    image = Image.new("1", (4, 4), 0)
    image.putpixel((1, 1), 1)
    path = tmp_path / "bits.png"
    image.save(path)

    loaded = imageio.load_image(path)

    assert loaded.image.getpixel((1, 1)) == WHITE
    assert loaded.image.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize("mode", sorted(Image.MODES))
def test_every_pillow_mode_converts_to_rgb(mode):
    image = Image.new(mode, (5, 3))

    rgb = imageio.convert_to_rgb(image)

    assert rgb.mode == "RGB"
    assert rgb.size == (5, 3)


@pytest.mark.parametrize("mode", sorted(Image.MODES))
def test_every_saveable_mode_loads_from_file(tmp_path, mode):
    image = Image.new(mode, (5, 3))
    written = None
    for suffix in (".png", ".tif", ".webp", ".bmp", ".jpg"):
        path = tmp_path / f"image{suffix}"
        try:
            image.save(path)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
            continue
        written = path
        break
    if written is None:
        pytest.skip(f"Pillow cannot write mode {mode} to PNG, TIFF, WebP, BMP or JPEG")

    loaded = imageio.load_image(written)

    assert loaded.image.mode == "RGB"
    assert loaded.image.size == (5, 3)


def test_odd_size_kept(tmp_path):
    path = tmp_path / "odd.jpg"
    Image.new("RGB", (427, 640), (10, 100, 200)).save(path)

    loaded = imageio.load_image(path)
    output = imageio.save_image(loaded.image, tmp_path / "odd_out.png", source=loaded)

    assert loaded.image.size == (427, 640)
    with Image.open(output) as saved:
        assert saved.size == (427, 640)


# --- bad files -----------------------------------------------------------------------------------------------


def test_truncated_jpeg_rejected(tmp_path):
    path = tmp_path / "cut.jpg"
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buffer, format="JPEG", quality=95)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])

    with pytest.raises(InvalidImageError, match="cut.jpg") as raised:
        imageio.load_image(path)

    assert "truncated" in str(raised.value)


def test_truncated_images_never_loaded_silently():
    import hywu_cli.cli  # noqa: F401 (imports every hywu module the CLI uses)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_png_rejected_within_a_second(tmp_path):
    path = tmp_path / "bomb.png"
    write_bomb_png(path)
    assert path.stat().st_size < 10_000

    started = time.perf_counter()
    with pytest.raises(InvalidImageError) as raised:
        imageio.load_image(path)
    elapsed = time.perf_counter() - started

    message = str(raised.value)
    assert elapsed < 1.0
    assert "20000x20000" in message
    assert "120 megapixels" in message
    assert "HYWU_MAX_PIXELS" in message


def test_pixel_limit_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setenv("HYWU_MAX_PIXELS", "399")

    with pytest.raises(InvalidImageError, match="above the limit"):
        imageio.load_image(path)

    monkeypatch.setenv("HYWU_MAX_PIXELS", "400")
    assert imageio.load_image(path).image.size == (20, 20)


def test_invalid_pixel_limit_rejected(monkeypatch):
    monkeypatch.setenv("HYWU_MAX_PIXELS", "lots")

    with pytest.raises(HywuError, match="HYWU_MAX_PIXELS"):
        imageio.max_pixels()


def test_pillow_limit_restored_after_load(tmp_path):
    path = tmp_path / "bomb.png"
    write_bomb_png(path)
    before = Image.MAX_IMAGE_PIXELS

    with pytest.raises(InvalidImageError):
        imageio.load_image(path)

    assert Image.MAX_IMAGE_PIXELS == before


def test_missing_and_folder_rejected(tmp_path):
    with pytest.raises(InvalidImageError, match="not found"):
        imageio.load_image(tmp_path / "nope.jpg")
    with pytest.raises(InvalidImageError, match="folder"):
        imageio.load_image(tmp_path)


def test_unsupported_format_named(tmp_path):
    path = tmp_path / "photo.ppm"
    Image.new("RGB", (4, 4)).save(path)

    with pytest.raises(InvalidImageError, match="unsupported format PPM"):
        imageio.load_image(path)


def test_unknown_content_rejected(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list\n")

    with pytest.raises(InvalidImageError, match="not a JPEG, PNG, WebP, TIFF, BMP or GIF image"):
        imageio.load_image(path)


def test_animated_gif_loads_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (6, 4), RED), Image.new("RGB", (6, 4), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)

    loaded = imageio.load_image(path)

    assert imageio.sniff_format(path) == "GIF"
    assert loaded.format == "GIF"
    assert loaded.image.mode == "RGB"
    assert loaded.image.size == (6, 4)
    assert close_to(loaded.image.getpixel((3, 2)), RED)


def test_header_check_rejects_bomb_without_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    write_bomb_png(bomb)
    small = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(small)

    started = time.perf_counter()
    with pytest.raises(InvalidImageError, match="120 megapixels"):
        imageio.check_image_header(bomb)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert imageio.check_image_header(small) == (20, 10)


def test_sniff_by_content(tmp_path):
    for image_format, suffix in (("JPEG", ".bin"), ("PNG", ".dat"), ("WEBP", ""), ("TIFF", ".x"), ("BMP", ".txt")):
        path = tmp_path / f"{image_format}{suffix}"
        Image.new("RGB", (4, 4)).save(path, format=image_format)
        assert imageio.sniff_format(path) == image_format
        assert imageio.sniff_image(path)
    text = tmp_path / "notes.jpg"
    text.write_text("BM this is text that starts like a bitmap\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")

    assert not imageio.sniff_image(text)
    assert not imageio.sniff_image(empty)
    assert not imageio.sniff_image(tmp_path / "missing.png")


# --- saving --------------------------------------------------------------------------------------------------

METADATA = {
    "instruction": "make it warmer ☀ 暖かく",
    "seed": 7,
    "strength": 0.8,
    "model": "hywu-lite",
    "hywu_version": "0.1.0",
}


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_metadata_embedded(tmp_path, suffix):
    output = imageio.save_image(Image.new("RGB", (8, 6), (1, 2, 3)), tmp_path / f"out{suffix}", metadata=METADATA)

    values = imageio.read_metadata(output)

    assert values == {key: str(value) for key, value in METADATA.items()}


def test_jpeg_metadata_in_exif_and_xmp(tmp_path):
    output = imageio.save_image(Image.new("RGB", (8, 6)), tmp_path / "out.jpg", metadata=METADATA)

    with Image.open(output) as saved:
        description = saved.getexif()[ExifTags.Base.ImageDescription]
        xmp = saved.info.get("xmp", b"")

    assert description.encode("latin-1").decode("utf-8") == METADATA["instruction"]
    assert METADATA["instruction"].encode("utf-8") in xmp
    assert b'hywu:seed="7"' in xmp


def test_png_metadata_in_text_chunks(tmp_path):
    output = imageio.save_image(Image.new("RGB", (8, 6)), tmp_path / "out.png", metadata=METADATA)

    with Image.open(output) as saved:
        assert saved.text["hywu:instruction"] == METADATA["instruction"]
        assert saved.text["hywu:seed"] == "7"


def test_icc_profile_kept(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source_path = tmp_path / "tagged.png"
    Image.new("RGB", (6, 6), (9, 9, 9)).save(source_path, icc_profile=profile)
    loaded = imageio.load_image(source_path)

    for suffix in (".jpg", ".png", ".webp", ".tif"):
        output = imageio.save_image(loaded.image, tmp_path / f"out{suffix}", source=loaded)
        with Image.open(output) as saved:
            assert saved.info.get("icc_profile") == profile, suffix


def write_jpeg_with_maker_note(path: Path, maker_note_bytes: int) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.MakerNote] = b"\x07" * maker_note_bytes
    Image.new("RGB", (8, 6)).save(path, exif=exif.tobytes())


def test_oversized_maker_note_dropped_once(tmp_path):
    source_path = tmp_path / "camera.jpg"
    write_jpeg_with_maker_note(source_path, 65_350)  # fits alone, too long with the edit metadata
    loaded = imageio.load_image(source_path)

    with pytest.warns(HywuWarning, match="MakerNote") as caught:
        output = imageio.save_image(loaded.image, tmp_path / "out.jpg", metadata=METADATA, source=loaded)

    with Image.open(output) as saved:
        exif = saved.getexif()
    assert len([warning for warning in caught if issubclass(warning.category, HywuWarning)]) == 1
    assert exif[ExifTags.Base.Make] == "TestCam"
    assert ExifTags.Base.MakerNote not in exif.get_ifd(ExifTags.IFD.Exif)
    assert imageio.read_metadata(output)["instruction"] == METADATA["instruction"]


def test_oversized_exif_not_carried_into_jpeg(tmp_path):
    source_path = tmp_path / "tagged.png"
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif[ExifTags.Base.Copyright] = "c" * 70_000  # PNG stores any size; a JPEG EXIF segment cannot
    Image.new("RGB", (8, 6)).save(source_path, exif=exif.tobytes())
    loaded = imageio.load_image(source_path)

    with pytest.warns(HywuWarning, match="carry none of the input's EXIF"):
        output = imageio.save_image(loaded.image, tmp_path / "out.jpg", metadata=METADATA, source=loaded)

    with Image.open(output) as saved:
        assert ExifTags.Base.Make not in saved.getexif()
    assert imageio.read_metadata(output)["seed"] == "7"
    png_output = imageio.save_image(loaded.image, tmp_path / "out.png", metadata=METADATA, source=loaded)
    with Image.open(png_output) as saved:
        assert saved.getexif()[ExifTags.Base.Make] == "TestCam"


def test_save_never_overwrites_input(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(path)
    original = path.read_bytes()
    loaded = imageio.load_image(path)

    with pytest.raises(OutputPathError, match="input image"):
        imageio.save_image(loaded.image, path, source=loaded)

    assert path.read_bytes() == original


def test_save_keeps_existing_without_overwrite(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"keep me")

    with pytest.raises(OutputPathError, match="already exists"):
        imageio.save_image(Image.new("RGB", (4, 4)), path, overwrite=False)

    assert path.read_bytes() == b"keep me"


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(self, file, *args, **kwargs):
        file.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    output = tmp_path / "out.jpg"

    with pytest.raises(OutputPathError, match="No space left"):
        imageio.save_image(Image.new("RGB", (4, 4)), output)

    assert list(tmp_path.iterdir()) == []


def test_save_creates_missing_folder(tmp_path):
    output = tmp_path / "new" / "deeper" / "out.png"

    imageio.save_image(Image.new("RGB", (4, 4)), output)

    assert output.is_file()


def test_unsupported_output_extension(tmp_path):
    with pytest.raises(OutputPathError, match="unsupported extension"):
        imageio.save_image(Image.new("RGB", (4, 4)), tmp_path / "out.gif")


def test_webp_size_limit_reported(tmp_path):
    with pytest.raises(OutputPathError, match="WEBP limit"):
        imageio.save_image(Image.new("RGB", (16_384, 1)), tmp_path / "wide.webp")


# --- comparison ----------------------------------------------------------------------------------------------


def test_comparison_side_by_side():
    before = Image.new("RGB", (40, 30), RED)
    after = Image.new("RGB", (40, 30), (0, 0, 255))

    comparison = imageio.make_comparison(before, after)

    assert comparison.width > 80
    assert comparison.height > 30
    label_height = comparison.height - 30
    assert comparison.getpixel((20, label_height + 15)) == RED
    assert comparison.getpixel((comparison.width - 20, label_height + 15)) == (0, 0, 255)


def test_comparison_scaled_to_max_width():
    before = Image.new("RGB", (400, 100))

    comparison = imageio.make_comparison(before, before.copy(), max_width=300)

    assert comparison.width == 300
