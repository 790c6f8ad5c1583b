"""Image reading and writing for hywu.

`load_image` turns any JPEG, PNG, WebP, TIFF, BMP or GIF file into an upright 8-bit RGB image and records what it
dropped on the way (source format, mode, EXIF orientation, ICC profile). `save_image` writes the edited image
atomically with the edit's metadata embedded. Both raise `InvalidImageError` or `OutputPathError` with messages
meant for the command line.

Mode conversion rules (see `convert_to_rgb`):
- transparency (RGBA, LA, PA, RGBa, La, P or L/RGB with a transparent colour) is composited onto
  `BACKGROUND_RGB`, white, so a fully transparent pixel becomes white whatever colour it stores;
- 16-bit grayscale (I;16, I;16B, I;16L, I;16N) is scaled with round(v * 255 / 65535), so 65535 -> 255 and
  32768 -> 128;
- 32-bit integer (I) is scaled the same way when its values fit 0..65535, otherwise from its min..max range;
- float (F) is scaled by 255 when its values fit 0..1, kept when they fit 0..255, otherwise stretched from its
  min..max range; NaN becomes 0;
- CMYK with an embedded ICC profile goes through LittleCMS to sRGB, and without one through Pillow's formula;
- every other mode (1, L, HSV, LAB, YCbCr, RGBX) uses Pillow's own conversion.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from PIL import ExifTags, Image, ImageDraw, ImageFont, ImageOps, PngImagePlugin

from hywu_cli.errors import HywuError, HywuWarning, InvalidImageError, OutputPathError


logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 120_000_000
MAX_PIXELS_ENV = "HYWU_MAX_PIXELS"
BACKGROUND_RGB = (255, 255, 255)

# Formats hywu reads. Pillow's JPEG plugin also opens MPO files (the multi-picture JPEG of many phones and
# cameras) and reports them as "MPO". hywu reads the first picture of such a file, and the first frame of an
# animated GIF.
READ_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
READ_FORMAT_NAMES = "JPEG, PNG, WebP, TIFF, BMP or GIF"
SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
CANONICAL_SUFFIX = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
# Largest width or height each format can store (libjpeg: 65500, libwebp: 16383; TIFF/PNG/BMP use 32-bit sizes).
MAX_DIMENSION = {"JPEG": 65_500, "WEBP": 16_383, "PNG": 2**31 - 1, "TIFF": 2**32 - 1, "BMP": 2**31 - 1}
QUALITY_FORMATS = ("JPEG", "WEBP")
# Largest EXIF and XMP payloads of one JPEG APP1 segment: 65535 bytes minus the 2-byte length, and for XMP also
# minus its 29-byte namespace header. Pillow 13.0 raises ValueError on larger ones.
JPEG_MAX_EXIF_BYTES = 65_533
JPEG_MAX_XMP_BYTES = 65_533 - 29

EXIF_ASCII_PREFIX = b"ASCII\x00\x00\x00"  # character-code header of an EXIF UserComment
XMP_NAMESPACE = "urn:hywu:metadata:1/"
METADATA_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Serialises the temporary change of Image.MAX_IMAGE_PIXELS in `load_image`.
_PIXEL_LIMIT_LOCK = threading.Lock()


@dataclass
class LoadedImage:
    """An input image converted for editing, with what the conversion dropped.

    Attributes:
        image: upright 8-bit RGB image (EXIF orientation applied).
        path: file it was read from.
        format: Pillow format name of the file, e.g. "JPEG".
        mode: Pillow mode of the file before conversion, e.g. "I;16" or "RGBA".
        stored_size: (width, height) as stored in the file, before the EXIF rotation.
        orientation: EXIF Orientation value that was applied (1 when none).
        icc_profile: ICC profile to attach to outputs; None when the file had none or when it described a colour
            space other than RGB (CMYK files are converted to sRGB, grayscale profiles are dropped).
        exif: the file's EXIF block without the Orientation tag, for JPEG, PNG and WebP sources; None otherwise.
    """

    image: Image.Image
    path: Path
    format: str
    mode: str
    stored_size: tuple[int, int]
    orientation: int = 1
    icc_profile: bytes | None = None
    exif: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return self.image.size


def max_pixels() -> int:
    """Return the pixel limit from `HYWU_MAX_PIXELS`, or `DEFAULT_MAX_PIXELS` when it is unset."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise HywuError(f"{MAX_PIXELS_ENV} must be a positive whole number of pixels, got {raw!r}")
    return value


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """Return the Pillow format name of a JPEG, PNG, WebP, TIFF, BMP or GIF file from its first bytes, else None.

    Only the first 32 bytes are read, so this is cheap enough to run on every file of a folder. Raises OSError
    when the file cannot be read.
    """
    with open(path, "rb") as file:
        head = file.read(32)
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    # "BM" alone matches plenty of text files, so also require a known DIB header size at byte 14.
    if (
        head[:2] == b"BM"
        and len(head) >= 18
        and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124)
    ):
        return "BMP"
    return None


def sniff_image(path: str | os.PathLike[str]) -> bool:
    """Return whether the file's content starts like an image hywu reads; False if it cannot be read."""
    try:
        return sniff_format(path) is not None
    except OSError:
        return False


@contextlib.contextmanager
def _pillow_bomb_check_disabled() -> Iterator[None]:
    # Pillow warns above Image.MAX_IMAGE_PIXELS and raises above twice that, with a message about its own
    # setting. hywu applies HYWU_MAX_PIXELS itself right after opening, so Pillow's check is switched off here;
    # the header is all that `Image.open` reads.
    with _PIXEL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@contextlib.contextmanager
def _open_checked(path: Path, limit: int) -> Iterator[Image.Image]:
    """Open an image's header and check its pixel count against `limit`; no pixel data is decoded."""
    if path.is_dir():
        raise InvalidImageError(f"{path} is a folder, not an image file")
    try:
        with _pillow_bomb_check_disabled():
            image = Image.open(path, formats=READ_FORMATS)
    except FileNotFoundError:
        raise InvalidImageError(f"image not found: {path}") from None
    except Image.UnidentifiedImageError:
        other_format = _identify_other_format(path)
        if other_format is not None:
            raise InvalidImageError(
                f"{path}: unsupported format {other_format}; convert it to {READ_FORMAT_NAMES}"
            ) from None
        raise InvalidImageError(f"{path} is not a {READ_FORMAT_NAMES} image (or its header is damaged)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(f"cannot read image {path}: {error}") from None

    with image:
        width, height = image.size
        if width * height > limit:
            raise InvalidImageError(
                f"{path} is {width}x{height} = {width * height / 1e6:.1f} megapixels, above the limit of "
                f"{limit / 1e6:g} megapixels; set {MAX_PIXELS_ENV} to a larger pixel count to allow it"
            )
        if width == 0 or height == 0:
            raise InvalidImageError(f"{path} has no pixels ({width}x{height})")
        yield image


def _identify_other_format(path: Path) -> str | None:
    """Return the Pillow format name of an image in a format hywu does not read, or None when none matches."""
    try:
        with _pillow_bomb_check_disabled(), Image.open(path) as image:
            return image.format
    except (OSError, SyntaxError, ValueError, EOFError):
        return None


def check_image_header(path: str | os.PathLike[str], *, pixel_limit: int | None = None) -> tuple[int, int]:
    """Return an image's (width, height) as stored, after the header checks of `load_image`, without decoding.

    Raises:
        InvalidImageError: the file is missing, not an image in a format hywu reads, or larger than the pixel
            limit (`max_pixels()` unless `pixel_limit` is given).
    """
    limit = max_pixels() if pixel_limit is None else pixel_limit
    with _open_checked(Path(path), limit) as image:
        return image.size


def load_image(path: str | os.PathLike[str], *, pixel_limit: int | None = None) -> LoadedImage:
    """Read an image file and return it as an upright 8-bit RGB `LoadedImage`.

    Args:
        path: JPEG, PNG, WebP, TIFF, BMP or GIF file; the format is detected from the content, not the
            extension. For multi-frame files the first frame is used.
        pixel_limit: maximum width * height; defaults to `max_pixels()`. The check runs on the header, before
            any pixel data is decoded.

    Raises:
        InvalidImageError: the file is missing, not an image, larger than the pixel limit, truncated or corrupt.
            The message names the file.
    """
    path = Path(path)
    limit = max_pixels() if pixel_limit is None else pixel_limit

    # 1. Open the header only and reject oversized images before decoding them
    with _open_checked(path, limit) as image:
        width, height = image.size

        # 2. Decode. hywu never sets PIL.ImageFile.LOAD_TRUNCATED_IMAGES (default False), so a cut file raises
        # here instead of loading with grey padding.
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidImageError(
                f"{path} is truncated or corrupt ({error}); copy or export the file again"
            ) from None

        source_format = image.format or "unknown"
        mode = image.mode
        icc_profile = image.info.get("icc_profile") or None
        orientation = _read_orientation(image)

        # 3. Rotate upright and convert to RGB
        try:
            upright = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError) as error:
            logger.warning("%s: ignoring unreadable EXIF orientation (%s)", path, error)
            upright = image.copy()
        rgb, icc_profile = _convert_with_profile(upright, icc_profile, path)
        exif = _carried_exif(upright) if source_format in ("JPEG", "MPO", "PNG", "WEBP") else None

    return LoadedImage(
        image=rgb,
        path=path,
        format=source_format,
        mode=mode,
        stored_size=(width, height),
        orientation=orientation,
        icc_profile=icc_profile,
        exif=exif,
    )


def upright(image: Image.Image) -> Image.Image:
    """Return `image` turned upright by its EXIF orientation, or `image` itself when it is upright already.

    `ImageOps.exif_transpose` copies an upright image (22 ms at 12 megapixels), and this skips that copy.
    """
    if _read_orientation(image) == 1:
        return image
    return ImageOps.exif_transpose(image)


# Images from this many pixels up convert to and from NumPy arrays in strips on several threads.
PARALLEL_CONVERSION_PIXELS = 2_000_000
CONVERSION_STRIP_ROWS = 256


def image_to_array(image: Image.Image, workers: int | None = None) -> np.ndarray:
    """Return an RGB image's pixels as a (height, width, 3) uint8 array.

    Pillow stores RGB pixels in 4 bytes each, so `np.asarray` packs them in one thread (47 ms at 12 megapixels on
    2 cores). Large images are packed in strips on `workers` threads (default: CPU cores), where Pillow releases
    the GIL (26 ms).
    """
    import numpy as np

    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}")
    width, height = image.size
    if width * height < PARALLEL_CONVERSION_PIXELS:
        return np.asarray(image)
    array = np.empty((height, width, 3), np.uint8)

    def copy_strip(top: int) -> None:
        bottom = min(top + CONVERSION_STRIP_ROWS, height)
        strip = image.crop((0, top, width, bottom)).tobytes()
        array[top:bottom] = np.frombuffer(strip, np.uint8).reshape(bottom - top, width, 3)

    _in_strips(copy_strip, height, workers)
    return array


def array_to_image(array: np.ndarray, workers: int | None = None) -> Image.Image:
    """Return a (height, width, 3) uint8 array as an RGB image, converting large arrays in strips on threads
    (8 ms instead of the 26 ms of `Image.fromarray` at 12 megapixels on 2 cores)."""
    import numpy as np

    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected a (height, width, 3) uint8 array, got shape {array.shape} of {array.dtype}")
    height, width, _ = array.shape
    if width * height < PARALLEL_CONVERSION_PIXELS:
        return Image.fromarray(array, "RGB")
    array = np.ascontiguousarray(array)
    image = Image.new("RGB", (width, height), None)  # not filled: every strip is pasted over it

    def paste_strip(top: int) -> None:
        bottom = min(top + CONVERSION_STRIP_ROWS, height)
        strip = Image.frombuffer("RGB", (width, bottom - top), array[top:bottom], "raw", "RGB", 0, 1)
        image.paste(strip, (0, top))

    _in_strips(paste_strip, height, workers)
    return image


def _in_strips(function, height: int, workers: int | None) -> None:
    """Call `function(top_row)` for every strip of `CONVERSION_STRIP_ROWS` rows on a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(function, range(0, height, CONVERSION_STRIP_ROWS)))


def _read_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _carried_exif(image: Image.Image) -> bytes | None:
    """Return the image's EXIF block without Orientation, since the pixels are already upright.

    The EXIF pixel dimensions are dropped too, because they describe the stored, unrotated image.
    """
    try:
        exif = image.getexif()
        exif.pop(ExifTags.Base.Orientation, None)
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        exif_ifd.pop(ExifTags.Base.ExifImageWidth, None)
        exif_ifd.pop(ExifTags.Base.ExifImageHeight, None)
        return exif.tobytes() if len(exif) else None
    except (OSError, SyntaxError, ValueError, TypeError) as error:
        logger.warning("dropping unreadable EXIF data (%s)", error)
        return None


def _icc_colour_space(profile: bytes) -> bytes:
    # The ICC header stores the data colour space signature at bytes 16..19, e.g. b"RGB ", b"CMYK", b"GRAY".
    return profile[16:20] if len(profile) >= 20 else b""


def _convert_with_profile(
    image: Image.Image, icc_profile: bytes | None, path: Path
) -> tuple[Image.Image, bytes | None]:
    """Convert to RGB and return the image with the ICC profile that still describes its pixels."""
    if icc_profile is None or _icc_colour_space(icc_profile) == b"RGB ":
        return convert_to_rgb(image), icc_profile

    if image.mode == "CMYK" and _icc_colour_space(icc_profile) == b"CMYK":
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "CMYK", "RGB")
            return ImageCms.applyTransform(image, transform), None
        except (ImageCms.PyCMSError, OSError, ValueError) as error:
            logger.warning("%s: CMYK profile unusable (%s); converting without it", path, error)

    # A grayscale or otherwise non-RGB profile cannot be attached to an RGB output, so it is dropped.
    return convert_to_rgb(image), None


def convert_to_rgb(image: Image.Image, background: tuple[int, int, int] = BACKGROUND_RGB) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit RGB with the rules in the module docstring."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _scale_integer_to_l(image).convert("RGB")
    if mode == "F":
        return _scale_float_to_l(image).convert("RGB")

    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        if mode == "La":
            # Pillow converts premultiplied La only to LA; LA then converts to RGBA.
            image = image.convert("LA")
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")

    return image.convert("RGB")


def _scale_integer_to_l(image: Image.Image) -> Image.Image:
    import numpy as np

    values = np.asarray(image).astype(np.int64)  # (height, width)
    if image.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
        low, high = int(values.min()), int(values.max())
        scaled = (values - low) * 255 // max(high - low, 1)
    else:
        scaled = (values * 255 + 32767) // 65535  # round(v * 255 / 65535) in integers
    return Image.fromarray(scaled.astype(np.uint8))


def _scale_float_to_l(image: Image.Image) -> Image.Image:
    import numpy as np

    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 0.0
    if low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    else:
        scaled = (values - low) * 255.0 / max(high - low, 1e-12)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def output_format(path: str | os.PathLike[str]) -> str:
    """Return the Pillow format for an output path from its extension.

    Raises:
        OutputPathError: the extension is not one hywu writes.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SAVE_FORMATS:
        allowed = ", ".join(SAVE_FORMATS)
        raise OutputPathError(
            f"cannot write {path}: unsupported extension {suffix or '(none)'!r}; use one of {allowed}"
        )
    return SAVE_FORMATS[suffix]


def is_same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Return whether two paths name the same file, following links; False when either does not exist."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def check_output_size(path: str | os.PathLike[str], size: tuple[int, int]) -> None:
    """Reject an image of `size` (width, height) that the format of `path` cannot store.

    Raises:
        OutputPathError: a side exceeds the format's limit (16,383 pixels for WebP, 65,500 for JPEG).
    """
    image_format = output_format(path)
    width, height = size
    if max(size) > MAX_DIMENSION[image_format]:
        raise OutputPathError(
            f"cannot write {path}: {width}x{height} exceeds the {image_format} limit of "
            f"{MAX_DIMENSION[image_format]} pixels per side; use .png or .tif"
        )


def save_image(
    image: Image.Image,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, object] | None = None,
    quality: int = 92,
    source: LoadedImage | None = None,
    overwrite: bool = True,
) -> Path:
    """Write an image atomically and return its path.

    The image goes to a temporary file in the target folder, which `os.replace` then moves onto `path`, so a
    failure never leaves a partial or empty output. Missing folders are created.

    Args:
        image: RGB (or L) image to write.
        path: output file; the format follows the extension (.jpg, .jpeg, .png, .webp, .tif, .tiff, .bmp).
        metadata: flat mapping of str keys (letters, digits, underscores) to str, int or float values. PNG gets
            one iTXt chunk `hywu:<key>` per entry. JPEG, WebP and TIFF get the whole mapping as JSON in the EXIF
            UserComment and the `instruction` entry in EXIF ImageDescription; JPEG and WebP also get an XMP
            packet with `dc:description` and one `hywu:<key>` property per entry. BMP cannot store metadata.
        quality: JPEG and WebP quality, 1..100.
        source: the loaded input. Its ICC profile and its EXIF block (without Orientation) are carried over,
            and `path` must not be the input file.
        overwrite: replace an existing file at `path`; when False an existing file raises OutputPathError.

    Raises:
        OutputPathError: unsupported extension, `path` is the input file or exists with `overwrite=False`, the
            image is too large for the format, or writing failed.
    """
    path = Path(path)
    metadata = dict(metadata or {})

    # 1. Check the destination
    image_format = output_format(path)
    if source is not None and (is_same_file(path, source.path) or path.resolve() == source.path.resolve()):
        raise OutputPathError(f"cannot write {path}: it is the input image, which hywu never modifies")
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: it is a folder")
    if not overwrite and path.exists():
        raise OutputPathError(f"{path} already exists; pass --overwrite to replace it or choose another name")
    check_output_size(path, image.size)
    for key in metadata:
        if not METADATA_KEY_PATTERN.match(key):
            raise ValueError(f"metadata key {key!r} must contain only letters, digits and underscores")

    # 2. Build the format's save arguments
    if image.mode not in ("RGB", "L"):
        image = convert_to_rgb(image)
    options = _save_options(image_format, metadata, quality, source)

    # 3. Write a temporary file next to the target, then rename it over the target
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot create output folder {folder}: {error.strerror or error}") from None
    try:
        descriptor, temporary_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputPathError(f"cannot write in {folder}: {error.strerror or error}") from None
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            image.save(file, format=image_format, **options)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputPathError(f"cannot write {path}: {error.strerror or error}") from None
    except ValueError as error:  # Pillow's encoders reject data they cannot store this way
        temporary.unlink(missing_ok=True)
        raise OutputPathError(f"cannot write {path}: {error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def default_file_mode() -> int:
    """Return the permission bits a new file gets under the current umask, e.g. 0o644 for umask 022."""
    # os.umask can only be read by setting it; hywu is single-threaded where it saves files.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _save_options(image_format: str, metadata: dict[str, object], quality: int, source: LoadedImage | None) -> dict:
    options: dict[str, object] = {}
    icc_profile = source.icc_profile if source is not None else None
    if icc_profile and image_format != "BMP":
        options["icc_profile"] = icc_profile
    if image_format in QUALITY_FORMATS:
        options["quality"] = quality

    if image_format == "PNG":
        text = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            text.add_itxt(f"hywu:{key}", str(value))
        options["pnginfo"] = text
        if source is not None and source.exif:
            options["exif"] = source.exif
    elif image_format == "JPEG":
        options["exif"] = _fit_jpeg_exif(metadata, source)
        xmp = _build_xmp(metadata) if metadata else b""
        if len(xmp) > JPEG_MAX_XMP_BYTES:
            warnings.warn(
                f"the edit metadata ({len(xmp)} bytes of XMP) is too long for a JPEG XMP segment; "
                "writing the JPEG without XMP",
                HywuWarning,
                stacklevel=3,
            )
        elif xmp:
            options["xmp"] = xmp
    elif image_format in ("WEBP", "TIFF"):
        options["exif"] = _build_exif(metadata, source.exif if source is not None else None)
        if image_format != "TIFF" and metadata:
            options["xmp"] = _build_xmp(metadata)
        # TIFF stays uncompressed: with compression Pillow (13.0) hands the file to libtiff, which fails on the
        # EXIF IFD pointer.
    elif metadata:
        logger.info("BMP files cannot store metadata; the edit parameters are not embedded")
    return options


def _build_exif(metadata: Mapping[str, object], carried: bytes | None, *, drop_maker_note: bool = False) -> bytes:
    exif = Image.Exif()
    if carried:
        exif.load(carried)
    exif.pop(ExifTags.Base.Orientation, None)
    if drop_maker_note:
        exif.get_ifd(ExifTags.IFD.Exif).pop(ExifTags.Base.MakerNote, None)
    if "instruction" in metadata:
        # EXIF declares ImageDescription as ASCII, but readers such as exiftool accept UTF-8 there. The
        # UserComment below keeps an ASCII-only JSON copy for strict readers.
        exif[ExifTags.Base.ImageDescription] = str(metadata["instruction"]).encode("utf-8")
    if metadata:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        exif_ifd[ExifTags.Base.UserComment] = EXIF_ASCII_PREFIX + json.dumps(metadata, ensure_ascii=True).encode()
    return exif.tobytes()


def _fit_jpeg_exif(metadata: Mapping[str, object], source: LoadedImage | None) -> bytes:
    """Return EXIF bytes that fit one JPEG segment, dropping carried EXIF parts, with one warning, if needed.

    The input's MakerNote goes first, because camera makers' private blocks are the usual reason for the size.
    If that is not enough, none of the input's EXIF is carried over, and if the edit metadata alone is too
    long, the JPEG gets no EXIF at all.
    """
    carried = source.exif if source is not None else None
    exif = _build_exif(metadata, carried)
    if len(exif) <= JPEG_MAX_EXIF_BYTES:
        return exif

    limit = f"the {JPEG_MAX_EXIF_BYTES}-byte limit of a JPEG EXIF segment"
    if carried:
        maker_note = _exif_maker_note_bytes(carried)
        if maker_note:
            exif = _build_exif(metadata, carried, drop_maker_note=True)
            if len(exif) <= JPEG_MAX_EXIF_BYTES:
                warnings.warn(
                    f"the EXIF MakerNote of {source.path} ({maker_note} bytes) does not fit within {limit} "
                    "together with the edit metadata; JPEG outputs leave it out and keep the rest of its EXIF",
                    HywuWarning,
                    stacklevel=4,
                )
                return exif
        exif = _build_exif(metadata, None)
        if len(exif) <= JPEG_MAX_EXIF_BYTES:
            warnings.warn(
                f"the EXIF of {source.path} ({len(carried)} bytes) does not fit within {limit} together with "
                "the edit metadata; JPEG outputs carry none of the input's EXIF",
                HywuWarning,
                stacklevel=4,
            )
            return exif
    warnings.warn(
        f"the edit metadata does not fit within {limit}; writing the JPEG without EXIF",
        HywuWarning,
        stacklevel=4,
    )
    return b""


def _exif_maker_note_bytes(carried: bytes) -> int:
    """Return the size of the MakerNote in an EXIF block, or 0 when it has none."""
    exif = Image.Exif()
    exif.load(carried)
    value = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.MakerNote)
    return len(value) if isinstance(value, (bytes, str)) else 0


def _build_xmp(metadata: Mapping[str, object]) -> bytes:
    properties = " ".join(f"hywu:{key}={quoteattr(str(value))}" for key, value in metadata.items())
    description = ""
    if "instruction" in metadata:
        description = (
            "<dc:description><rdf:Alt>"
            f'<rdf:li xml:lang="x-default">{escape(str(metadata["instruction"]))}</rdf:li>'
            "</rdf:Alt></dc:description>"
        )
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f'xmlns:hywu="{XMP_NAMESPACE}" {properties}>'
        f"{description}"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Return the hywu metadata embedded by `save_image`, with every value as a string; {} when there is none."""
    with Image.open(path) as image:
        if image.format == "PNG":
            text = getattr(image, "text", {}) or {}
            return {key.removeprefix("hywu:"): str(value) for key, value in text.items() if key.startswith("hywu:")}
        comment = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    if isinstance(comment, bytes) and comment.startswith(EXIF_ASCII_PREFIX):
        try:
            values = json.loads(comment[len(EXIF_ASCII_PREFIX) :].decode("ascii"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        if isinstance(values, dict):
            return {str(key): str(value) for key, value in values.items()}
    return {}


def make_comparison(
    before: Image.Image,
    after: Image.Image,
    *,
    labels: tuple[str, str] = ("before", "after"),
    max_width: int | None = None,
) -> Image.Image:
    """Return `before` and `after` side by side on white, each under a small text label.

    `after` is resized to the height of `before` when they differ. When `max_width` is given and the result
    would be wider, the whole comparison is scaled down to fit.
    """
    before = convert_to_rgb(before)
    after = convert_to_rgb(after)
    if after.height != before.height:
        width = max(1, round(after.width * before.height / after.height))
        after = after.resize((width, before.height), Image.Resampling.LANCZOS)

    gap = max(4, before.width // 100)
    label_height = min(max(before.height // 24, 14), 64)
    font = _label_font(int(label_height * 0.75))
    canvas = Image.new("RGB", (before.width + gap + after.width, label_height + before.height), BACKGROUND_RGB)
    draw = ImageDraw.Draw(canvas)
    for left, panel, label in ((0, before, labels[0]), (before.width + gap, after, labels[1])):
        canvas.paste(panel, (left, label_height))
        draw.text((left + 4, label_height // 2), label, fill=(32, 32, 32), font=font, anchor="lm")

    if max_width is not None and canvas.width > max_width:
        height = max(1, round(canvas.height * max_width / canvas.width))
        canvas = canvas.resize((max_width, height), Image.Resampling.LANCZOS)
    return canvas


def _label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=max(size, 8))
    except (OSError, TypeError, ImportError):
        # Pillow built without FreeType only has its fixed-size bitmap font.
        return ImageFont.load_default()
