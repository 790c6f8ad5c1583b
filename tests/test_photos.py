"""Checks on the photo gathering module that need no network: user folders, allow-lists, license parsing, split."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from hywu_cli.errors import HywuError
from hywu_cli.photos import (
    CATEGORIES,
    FREE_LICENSES,
    LIBRARY_PHOTOS,
    MIN_HELDOUT,
    PACKAGE_PHOTOS,
    PACKAGES,
    Photo,
    add_user_photos,
    find_stanza,
    list_photos,
    output_name,
    package_output_name,
    parse_copyright,
    split_photos,
    write_jpeg,
)


def _save(image: Image.Image, path: Path, image_format: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=image_format)
    return path


def test_add_user_photos_mixed_folder(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (40, 30), (10, 120, 200))
    rgba = Image.new("RGBA", (30, 40), (200, 10, 10, 128))
    expected = [
        _save(rgb, tmp_path / "a.jpg", "JPEG"),
        _save(rgba, tmp_path / "b.png", "PNG"),
        _save(rgb, tmp_path / "nested" / "c.webp", "WEBP"),
        _save(rgb, tmp_path / "nested" / "d.bmp", "BMP"),
        _save(rgb.convert("P"), tmp_path / "nested" / "deeper" / "e.gif", "GIF"),
        _save(rgb, tmp_path / "nested" / "deeper" / "f.tiff", "TIFF"),
        # Pillow identifies images by content, so a wrong extension does not matter.
        _save(rgb, tmp_path / "g_png_named.txt", "PNG"),
    ]
    (tmp_path / "notes.txt").write_text("not an image\n", encoding="utf-8")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text_named.jpg").write_text("plain text with an image extension\n", encoding="utf-8")
    full_png = io.BytesIO()
    rgb.save(full_png, format="PNG")
    (tmp_path / "truncated.png").write_bytes(full_png.getvalue()[: len(full_png.getvalue()) // 2])
    # Image.verify() accepts a JPEG cut inside its entropy-coded data, so this case needs a decode.
    noise = Image.effect_noise((200, 150), 64).convert("RGB")
    full_jpeg = io.BytesIO()
    noise.save(full_jpeg, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(full_jpeg.getvalue()[: len(full_jpeg.getvalue()) * 9 // 10])
    (tmp_path / "empty_folder").mkdir()

    found = add_user_photos(tmp_path)

    assert found == sorted(expected)
    assert all(path.is_file() for path in found)


def test_add_user_photos_empty_folder(tmp_path: Path) -> None:
    assert add_user_photos(tmp_path) == []


def test_add_user_photos_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(HywuError, match="not found"):
        add_user_photos(tmp_path / "missing")


def test_add_user_photos_file_instead_of_folder(tmp_path: Path) -> None:
    file_path = _save(Image.new("RGB", (8, 8)), tmp_path / "one.png", "PNG")
    with pytest.raises(HywuError, match="not a directory"):
        add_user_photos(file_path)


def test_list_photos_sorted_jpegs(tmp_path: Path) -> None:
    image = Image.new("RGB", (8, 8))
    second = _save(image, tmp_path / "heldout" / "b.jpg", "JPEG")
    first = _save(image, tmp_path / "heldout" / "a.jpg", "JPEG")
    (tmp_path / "heldout" / "readme.txt").write_text("x", encoding="utf-8")

    assert list_photos(tmp_path, "heldout") == [first, second]


def test_list_photos_rejects_invalid_split(tmp_path: Path) -> None:
    with pytest.raises(HywuError, match="invalid split"):
        list_photos(tmp_path, "validation")


def test_list_photos_missing_split(tmp_path: Path) -> None:
    with pytest.raises(HywuError, match="python -m hywu_cli.photos"):
        list_photos(tmp_path, "train")


def test_allow_lists_cover_packages() -> None:
    assert set(PACKAGE_PHOTOS) == set(PACKAGES)


def test_allow_lists_have_no_duplicates() -> None:
    package_paths = [(package, entry.path) for package, entries in PACKAGE_PHOTOS.items() for entry in entries]
    copyright_paths = [
        (package, entry.copyright_path) for package, entries in PACKAGE_PHOTOS.items() for entry in entries
    ]
    library_names = [(entry.library, entry.name) for entry in LIBRARY_PHOTOS]
    output_names = [
        package_output_name(package, entry) for package, entries in PACKAGE_PHOTOS.items() for entry in entries
    ]
    output_names += [output_name(entry.library, Path(entry.name).stem) for entry in LIBRARY_PHOTOS]

    for label, values in [
        ("package path", package_paths),
        ("copyright path", copyright_paths),
        ("library image", library_names),
        ("output name", output_names),
    ]:
        duplicates = [value for value, count in Counter(values).items() if count > 1]
        assert duplicates == [], f"duplicate {label} in the allow-lists: {duplicates}"


def test_allow_list_entries_are_complete() -> None:
    entries = [entry for entries in PACKAGE_PHOTOS.values() for entry in entries] + list(LIBRARY_PHOTOS)
    for entry in entries:
        assert entry.subject.strip(), f"empty subject in {entry}"
        assert entry.category in CATEGORIES, f"invalid category in {entry}"
    for entry in LIBRARY_PHOTOS:
        assert entry.license in FREE_LICENSES, f"library photo {entry.name} has a license outside FREE_LICENSES"


def test_package_output_name_uses_plasma_folder() -> None:
    path_entry = next(entry for entry in PACKAGE_PHOTOS["plasma-workspace-wallpapers"] if "/Path/" in entry.path)
    mate_entry = next(entry for entry in PACKAGE_PHOTOS["mate-backgrounds"] if entry.path.endswith("/Aqua.jpg"))

    assert package_output_name("plasma-workspace-wallpapers", path_entry) == "plasma-workspace-wallpapers-path.jpg"
    assert package_output_name("mate-backgrounds", mate_entry) == "mate-backgrounds-aqua.jpg"


COPYRIGHT_TEXT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sample

Files: *
Copyright: 2014 Some Group
License: GPL-2+

Files: nature/Aqua.jpg
       nature/LadyBird.jpg
Copyright: 2008, Charles Barbin
           2009, Second Holder
License: CC-BY-SA-4.0
Comment: Copyright holders are found in AUTHORS file.

Files: debian/*
Copyright: 2020, Packager
License: GPL-2+

License: GPL-2+
 This package is free software.
 .
 More text.
"""


def test_parse_copyright_reads_stanzas() -> None:
    stanzas = parse_copyright(COPYRIGHT_TEXT)

    assert [stanza.files for stanza in stanzas] == [("*",), ("nature/Aqua.jpg", "nature/LadyBird.jpg"), ("debian/*",)]
    assert stanzas[1].copyright == "2008, Charles Barbin; 2009, Second Holder"
    assert stanzas[1].license == "CC-BY-SA-4.0"


def test_find_stanza_last_match_wins() -> None:
    stanzas = parse_copyright(COPYRIGHT_TEXT)

    assert find_stanza(stanzas, "nature/LadyBird.jpg") == stanzas[1]
    assert find_stanza(stanzas, "nature/Other.jpg") == stanzas[0]
    assert find_stanza(stanzas, "debian/rules") == stanzas[2]
    assert find_stanza(stanzas[1:2], "abstract/Flow.png") is None


def _fake_photo(index: int, category: str, source: str, license_name: str) -> Photo:
    return Photo(
        name=f"{source}-{index:02d}.jpg",
        source=source,
        source_version="1",
        original_path=f"photo{index}.jpg",
        subject=f"subject {index}",
        category=category,  # type: ignore[arg-type]
        license=license_name,
        license_source="test",
        author="test",
        original_size=(100, 80),
    )


def _fake_photos() -> list[Photo]:
    photos = []
    for index in range(30):
        category = CATEGORIES[index % len(CATEGORIES)]
        source = ("alpha", "beta", "gamma")[index % 3]
        license_name = "CC-BY-SA-3.0" if index % 5 == 0 else "CC0-1.0"
        photos.append(_fake_photo(index, category, source, license_name))
    return photos


def test_split_photos_partition_and_size() -> None:
    photos = _fake_photos()
    train, heldout, _ = split_photos(photos)

    assert sorted(p.name for p in train + heldout) == sorted(p.name for p in photos)
    assert not {p.name for p in train} & {p.name for p in heldout}
    assert len(heldout) >= MIN_HELDOUT
    assert len(heldout) == max(MIN_HELDOUT, round(len(photos) * 0.2))


def test_split_photos_covers_categories() -> None:
    _, heldout, examples = split_photos(_fake_photos())

    assert {p.category for p in heldout} == set(CATEGORIES)
    assert [p.category for p in examples] == list(CATEGORIES)
    assert all(p.example_ok for p in examples)
    assert set(examples) <= set(heldout)


def test_split_photos_is_deterministic() -> None:
    photos = _fake_photos()
    first = split_photos(photos)
    second = split_photos(list(reversed(photos)))

    assert first == second


def test_split_photos_prefers_example_licenses() -> None:
    photos = [
        _fake_photo(0, "landscape", "alpha", "CC-BY-SA-3.0"),
        _fake_photo(1, "landscape", "alpha", "CC-BY-SA-4.0"),
        _fake_photo(2, "landscape", "beta", "GPL-2+"),
    ]
    _, _, examples = split_photos(photos)

    assert [p.name for p in examples] == ["beta-02.jpg"]


def test_write_jpeg_downscales_and_flattens(tmp_path: Path) -> None:
    image = Image.new("RGBA", (300, 120), (0, 0, 0, 0))
    path = tmp_path / "out.jpg"

    size = write_jpeg(image, path, max_side=100, quality=95)

    with Image.open(path) as written:
        assert written.format == "JPEG"
        assert written.mode == "RGB"
        assert written.size == size == (100, 40)
        # A fully transparent image is composited over white.
        assert min(written.getpixel((50, 20))) > 245
