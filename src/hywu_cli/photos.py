"""Gather freely licensed real photographs for training and evaluation, and find photos in a user's folder.

Run `python -m hywu_cli.photos --out data/photos` to build the data set. The photos come from four Debian
wallpaper packages (fetched with `apt-get download` and unpacked with `dpkg -x`, so no root install is needed)
and from the sample images that scikit-image, scikit-learn and matplotlib ship inside their wheels. Nothing is
fetched from any other host.

Which files count as real photographs was decided by looking at every candidate, and the decision is recorded in
the allow-lists below, so two runs with the same package versions produce the same set. The license of a package
photo is read from `usr/share/doc/<package>/copyright` in the unpacked tree at run time. The license of a library
photo is stated in the allow-list and checked against the library's own documentation at run time.

Output layout under OUT: `train/*.jpg`, `heldout/*.jpg` (RGB JPEG, quality 95, long side at most 2048 px) and
`manifest.json` with one entry per photo. With `--examples DIR` the script also writes four small, permissively
licensed held-out photos and `DIR/SOURCES.md`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hywu_cli.errors import HywuError


if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

# A landscape is a wide outdoor scene. In people-animals a person or an animal is the subject. Architecture covers
# buildings and streets, and a close-up shows a small object, plant or texture filling the frame.
Category = Literal["landscape", "people-animals", "architecture", "close-up"]
CATEGORIES: tuple[Category, ...] = ("landscape", "people-animals", "architecture", "close-up")

SPLITS = ("train", "heldout")
TRAIN_MAX_SIDE = 2048
TRAIN_JPEG_QUALITY = 95
HELDOUT_FRACTION = 0.2
MIN_HELDOUT = 6
EXAMPLE_MAX_SIDE = 1600
EXAMPLE_MAX_BYTES = 600_000

# Two photos whose 256-bit difference hashes differ in at most this many bits are treated as the same picture.
# Measured on the packages and libraries named below: the three sizes of mate-backgrounds' Elephants.jpg differ
# by 0 bits, and the two closest distinct photos in the allow-lists (Dune and DarkestHour) differ by 70 bits.
DUPLICATE_MAX_BITS = 16

# Licenses under which a photo may be used for training. A photo whose license is not listed here is excluded.
FREE_LICENSES = frozenset(
    {"CC0-1.0", "public-domain", "CC-BY-2.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "GPL-2+", "LGPLv3"}
)
# Licenses allowed for the photos copied into this repository's examples/ folder. The CC-BY-SA licenses are left
# out so that the examples carry no share-alike terms other than the GPL's.
EXAMPLE_LICENSES = frozenset({"CC0-1.0", "public-domain", "CC-BY-2.0", "CC-BY-4.0", "GPL-2+", "LGPLv3"})
LICENSE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "GPL-2+": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "LGPLv3": "https://www.gnu.org/licenses/lgpl-3.0.html",
}


# --------------------------------------------------------------------------------------------------------------
# Allow-lists
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackagePhoto:
    """A photograph shipped in a Debian package.

    `path` is the file inside the unpacked package. `copyright_path` is the same file as the `Files:` globs of
    the package's debian/copyright spell it, which follow the upstream source tree, not the installed layout.
    """

    path: str
    copyright_path: str
    subject: str
    category: Category


@dataclass(frozen=True)
class LibraryPhoto:
    """A photograph shipped in a Python library's wheel, with the license its documentation states.

    `evidence` is a phrase that must appear in the library's documentation of this image. The photo is skipped
    when the phrase is missing, because the documented license may have changed. None means that the library
    ships no statement to check.
    """

    library: str
    name: str
    subject: str
    category: Category
    license: str
    author: str
    evidence: str | None
    note: str = ""


PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "lomiri-wallpapers-20.04", "ukui-wallpapers")

# Checked against mate-backgrounds 1.26.0-1 (Debian 12). Excluded after viewing: abstract/* (Silk, Spring,
# Waves, Flow, Gulp, Arc-Colors are drawn patterns, and Elephants in three sizes is a painting) and desktop/*
# (logos, stripes, and the Ubuntu-Mate-*-no-logo images, which are blurred colour fields with no scene).
_MATE = (
    PackagePhoto("usr/share/backgrounds/mate/nature/Aqua.jpg", "nature/Aqua.jpg", "water drop", "close-up"),
    PackagePhoto("usr/share/backgrounds/mate/nature/Blinds.jpg", "nature/Blinds.jpg", "leaf veins", "close-up"),
    PackagePhoto("usr/share/backgrounds/mate/nature/Dune.jpg", "nature/Dune.jpg", "dune grass", "close-up"),
    PackagePhoto(
        "usr/share/backgrounds/mate/nature/FreshFlower.jpg", "nature/FreshFlower.jpg", "orange flower", "close-up"
    ),
    PackagePhoto("usr/share/backgrounds/mate/nature/Garden.jpg", "nature/Garden.jpg", "marigold", "close-up"),
    PackagePhoto(
        "usr/share/backgrounds/mate/nature/GreenMeadow.jpg", "nature/GreenMeadow.jpg", "grass blades", "close-up"
    ),
    PackagePhoto(
        "usr/share/backgrounds/mate/nature/LadyBird.jpg", "nature/LadyBird.jpg", "ladybird", "people-animals"
    ),
    PackagePhoto("usr/share/backgrounds/mate/nature/RainDrops.jpg", "nature/RainDrops.jpg", "wet leaves", "close-up"),
    PackagePhoto("usr/share/backgrounds/mate/nature/Storm.jpg", "nature/Storm.jpg", "storm clouds", "landscape"),
    PackagePhoto(
        "usr/share/backgrounds/mate/nature/TwoWings.jpg", "nature/TwoWings.jpg", "dandelion seeds", "close-up"
    ),
    PackagePhoto("usr/share/backgrounds/mate/nature/Wood.jpg", "nature/Wood.jpg", "wood planks", "close-up"),
    PackagePhoto(
        "usr/share/backgrounds/mate/nature/YellowFlower.jpg", "nature/YellowFlower.jpg", "yellow flower", "close-up"
    ),
)

# Checked against plasma-workspace-wallpapers 4:5.27.5-2. Each wallpaper folder contains one real image, and the
# other sizes in contents/images/ are symlinks to it, so naming the real file keeps the largest copy. Excluded
# after viewing: Autumn (painting), SafeLanding (illustration), and the rendered or vector designs Altai,
# Canopee, Cascade, Cluster, Elarun, Flow, FlyingKonqui, Honeywave, IceCold, Kay, Kokkini, MilkyWay, Opal,
# PastelHills, Patak, Shell and Volna.
_PLASMA = (
    PackagePhoto(
        "usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg",
        "BytheWater/contents/images/2560x1600.jpg",
        "lakeside jetty",
        "landscape",
    ),
    PackagePhoto(
        "usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg",
        "ColdRipple/contents/images/2560x1600.jpg",
        "foggy pier",
        "landscape",
    ),
    PackagePhoto(
        "usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
        "ColorfulCups/contents/images/2560x1600.jpg",
        "paper cups",
        "close-up",
    ),
    PackagePhoto(
        "usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg",
        "DarkestHour/contents/images/2560x1600.jpg",
        "misty lake",
        "landscape",
    ),
    PackagePhoto(
        "usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg",
        "EveningGlow/contents/images/2560x1600.jpg",
        "rowing boats",
        "landscape",
    ),
    PackagePhoto(
        "usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg",
        "FallenLeaf/contents/images/2560x1600.jpg",
        "autumn leaf",
        "close-up",
    ),
    # A greyscale photograph. It is kept because it is the only building in the packages.
    PackagePhoto(
        "usr/share/wallpapers/Grey/contents/images/2560x1600.jpg",
        "Grey/contents/images/2560x1600.jpg",
        "building facade",
        "architecture",
    ),
    PackagePhoto(
        "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg",
        "Kite/contents/images/2560x1600.jpg",
        "kite sky",
        "landscape",
    ),
    PackagePhoto(
        "usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg",
        "OneStandsOut/contents/images/2560x1600.jpg",
        "moss",
        "close-up",
    ),
    PackagePhoto(
        "usr/share/wallpapers/Path/contents/images/2560x1600.jpg",
        "Path/contents/images/2560x1600.jpg",
        "forest path",
        "landscape",
    ),
    PackagePhoto(
        "usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg",
        "summer_1am/contents/images/2560x1600.jpg",
        "lake dawn",
        "landscape",
    ),
)

# Checked against lomiri-wallpapers-20.04 20.04.0-2. Excluded after viewing: Fossa_by_Jasper_Roks.jpg and
# Painting-Colors_by__herobrine7gamer.jpg (abstract shapes), Infinite-Sea_by_Aury88.jpg (a Milky Way composite
# under a geometric overlay).
_LOMIRI = (
    PackagePhoto(
        "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
        "20.04/Kleiber_by_Lukas_Baubkus.jpg",
        "nuthatch",
        "people-animals",
    ),
)

# Checked against ukui-wallpapers 20.04.3-1.1: every image (2004default, calla, city, desert, firstgeneration,
# fluent-color, focal-ubuntukylin, goldfish, rhythm, rollpaper, string, the-mouse) is a render or an
# illustration, so the package contributes no photo. It is still fetched so that a new version gets looked at.
_UKUI: tuple[PackagePhoto, ...] = ()

PACKAGE_PHOTOS: dict[str, tuple[PackagePhoto, ...]] = {
    "mate-backgrounds": _MATE,
    "plasma-workspace-wallpapers": _PLASMA,
    "lomiri-wallpapers-20.04": _LOMIRI,
    "ukui-wallpapers": _UKUI,
}

# Library samples, checked against scikit-image 0.26.0, scikit-learn 1.9.1 and matplotlib 3.11.2. Only images
# bundled in the wheels are used, because the images that skimage.data downloads on first use need a host this
# script must not contact.
#
# Excluded from skimage.data: camera, moon, brick, grass and gravel (their docstrings state no license),
# stereo_motorcycle (the docstring credits the Middlebury 2014 stereo data set but states no license),
# coins (only "No known copyright restrictions", without a dedication), clock (a deliberately motion-blurred
# test image), hubble_deep_field (a composite of telescope exposures, not a camera photograph), retina and
# immunohistochemistry (medical and microscopy images), and the drawings and synthetic images (horse, text,
# page, logo, colorwheel, checkerboard, shepp_logan_phantom). matplotlib's other sample images are a logo and a
# clip-art gift box.
LIBRARY_PHOTOS: tuple[LibraryPhoto, ...] = (
    LibraryPhoto(
        library="scikit-image",
        name="astronaut",
        subject="astronaut",
        category="people-animals",
        license="public-domain",
        author="NASA",
        evidence="released into the public domain",
    ),
    LibraryPhoto(
        library="scikit-image",
        name="coffee",
        subject="coffee cup",
        category="close-up",
        license="CC0-1.0",
        author="Rachel Michetti (courtesy of Pikolo Espresso Bar)",
        evidence="CC0 by the photographer",
    ),
    LibraryPhoto(
        library="scikit-image",
        name="chelsea",
        subject="cat",
        category="people-animals",
        license="CC0-1.0",
        author="Stefan van der Walt",
        evidence="CC0 by the photographer",
    ),
    LibraryPhoto(
        library="scikit-image",
        name="rocket",
        subject="rocket launch",
        category="landscape",
        license="public-domain",
        author="SpaceX",
        evidence="released in the public domain",
    ),
    LibraryPhoto(
        library="scikit-learn",
        name="china.jpg",
        subject="pagoda",
        category="architecture",
        license="CC-BY-2.0",
        author="danielbuechele (Flickr)",
        evidence="creativecommons.org/licenses/by/2.0",
    ),
    LibraryPhoto(
        library="scikit-learn",
        name="flower.jpg",
        subject="dahlia",
        category="close-up",
        license="CC-BY-2.0",
        author="vultilion (Flickr)",
        evidence="creativecommons.org/licenses/by/2.0",
        note="scikit-learn's README names danielbuechele as the author but links the photo page of vultilion",
    ),
    # matplotlib 3.11 ships no license note for its sample data, so the license comes from the pull request that
    # added this file (matplotlib/matplotlib#1599, 2012), which describes it as a public-domain image.
    LibraryPhoto(
        library="matplotlib",
        name="grace_hopper.jpg",
        subject="portrait",
        category="people-animals",
        license="public-domain",
        author="not stated by matplotlib",
        evidence=None,
        note="public domain per matplotlib pull request 1599, which added the file. The package states no license.",
    ),
)


# --------------------------------------------------------------------------------------------------------------
# Photo records
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """One selected photograph with its provenance, ready to be written."""

    name: str
    source: str
    source_version: str
    original_path: str
    subject: str
    category: Category
    license: str
    license_source: str
    author: str
    original_size: tuple[int, int]
    upstream_license: str = ""
    note: str = ""
    load: Callable[[], Image.Image] = field(compare=False, repr=False, default=lambda: _missing_loader())

    @property
    def example_ok(self) -> bool:
        """Whether every license attached to the photo allows it in examples/."""
        licenses = [self.license] + ([self.upstream_license] if self.upstream_license else [])
        return all(name in EXAMPLE_LICENSES for name in licenses)


def _missing_loader() -> Image.Image:
    raise HywuError("internal error: photo record has no loader")


def output_name(source: str, label: str) -> str:
    """Return the output file name for a photo, e.g. `mate-backgrounds-aqua.jpg`."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{source}-{label}".lower()).strip("-")
    return f"{slug}.jpg"


def package_output_name(package: str, entry: PackagePhoto) -> str:
    """Return the output file name of a package photo.

    Plasma wallpapers are named by their folder (`usr/share/wallpapers/<Name>/contents/images/<size>.jpg`),
    because every file in them is named by its size. Other package photos are named by their file stem.
    """
    parts = Path(entry.path).parts
    if parts[:3] == ("usr", "share", "wallpapers") and len(parts) > 3:
        return output_name(package, parts[3])
    return output_name(package, Path(entry.path).stem)


def split_hash(name: str) -> str:
    """Return the hex SHA-256 of a file name, the sort key of the train/held-out split."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Debian packages
# --------------------------------------------------------------------------------------------------------------


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    logger.debug("running %s", " ".join(command))
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _compare_debian_versions(left: str, right: str) -> int:
    if _run(["dpkg", "--compare-versions", left, "lt", right]).returncode == 0:
        return -1
    if _run(["dpkg", "--compare-versions", left, "gt", right]).returncode == 0:
        return 1
    return 0


def _deb_version(deb: Path) -> str:
    result = _run(["dpkg-deb", "--field", str(deb), "Version"])
    if result.returncode != 0:
        raise HywuError(f"failed to read the version of {deb}: {result.stderr.strip()}. Delete the file and rerun.")
    return result.stdout.strip()


def _cached_deb(cache: Path, package: str) -> Path | None:
    """Return the newest cached .deb of a package, or None."""
    debs = list(cache.glob(f"{package}_*.deb"))
    if not debs:
        return None
    versions = {deb: _deb_version(deb) for deb in debs}
    newest = max(debs, key=functools.cmp_to_key(lambda a, b: _compare_debian_versions(versions[a], versions[b])))
    return newest


def download_debs(packages: Iterable[str], cache: Path) -> dict[str, Path]:
    """Download the packages' .deb files into `cache` with `apt-get download`, reusing files already there.

    `apt-get update` runs only when apt reports that it cannot locate a package, because the package lists
    may be missing or stale on a fresh machine. Raises HywuError when a download still fails.
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise HywuError("apt-get or dpkg not found: this script needs a Debian-based system to fetch wallpapers")
    cache.mkdir(parents=True, exist_ok=True)
    missing = [package for package in packages if _cached_deb(cache, package) is None]

    if missing:
        logger.info("downloading %s into %s", ", ".join(missing), cache)
        result = _run(["apt-get", "download", *missing], cwd=cache)
        if result.returncode != 0 and "unable to locate" in result.stderr.lower():
            logger.info("apt-get cannot locate a package, running apt-get update and retrying")
            update = _run(["apt-get", "update"])
            if update.returncode != 0:
                raise HywuError(
                    f"apt-get update failed with exit code {update.returncode}: {update.stderr.strip()[-500:]}. "
                    "Run it as root, or put the .deb files into the cache folder by hand."
                )
            result = _run(["apt-get", "download", *missing], cwd=cache)
        if result.returncode != 0:
            raise HywuError(
                f"apt-get download {' '.join(missing)} failed with exit code {result.returncode}: "
                f"{result.stderr.strip()[-500:]}"
            )

    debs: dict[str, Path] = {}
    for package in packages:
        deb = _cached_deb(cache, package)
        if deb is None:
            raise HywuError(f"apt-get download reported success but no {package}_*.deb is in {cache}")
        debs[package] = deb
    return debs


def unpack_deb(deb: Path, tree: Path) -> Path:
    """Unpack a .deb into `tree` with `dpkg -x`, unless a stamp shows that this exact file is already unpacked."""
    stamp = tree / ".unpacked-from"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == deb.name:
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    result = _run(["dpkg", "-x", str(deb), str(tree)])
    if result.returncode != 0:
        raise HywuError(f"dpkg -x {deb} failed: {result.stderr.strip()}. Delete the file so it is downloaded again.")
    stamp.write_text(deb.name, encoding="utf-8")
    return tree


@dataclass(frozen=True)
class CopyrightStanza:
    """One `Files:` paragraph of a machine-readable debian/copyright file."""

    files: tuple[str, ...]
    copyright: str
    license: str


def parse_copyright(text: str) -> list[CopyrightStanza]:
    """Parse the `Files:` paragraphs of a debian/copyright file in the DEP-5 format.

    Continuation lines start with whitespace. Only the first line of `License:` (the short license name) is
    kept, and paragraphs without `Files:` (the header and stand-alone license texts) are skipped.
    """
    stanzas = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, list[str]] = {}
        current: str | None = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and current is not None:
                fields[current].append(line.strip())
            elif ":" in line:
                current, value = line.split(":", 1)
                current = current.strip().lower()
                fields[current] = [value.strip()]
        if "files" not in fields:
            continue
        files = tuple(" ".join(fields["files"]).split())
        copyright_lines = [line for line in fields.get("copyright", []) if line and line != "."]
        license_name = fields.get("license", [""])[0]
        stanzas.append(CopyrightStanza(files, "; ".join(copyright_lines), license_name))
    return stanzas


def find_stanza(stanzas: list[CopyrightStanza], path: str) -> CopyrightStanza | None:
    """Return the stanza that governs `path`, which DEP-5 defines as the last matching `Files:` paragraph."""
    match = None
    for stanza in stanzas:
        if any(fnmatchcase(path, pattern) for pattern in stanza.files):
            match = stanza
    return match


def _read_plasma_metadata(image: Path) -> tuple[str, str] | None:
    """Return (authors, license) from the metadata.json beside a Plasma wallpaper's contents/ folder."""
    for parent in image.parents:
        metadata = parent / "metadata.json"
        if metadata.is_file():
            plugin = json.loads(metadata.read_text(encoding="utf-8")).get("KPlugin", {})
            authors = ", ".join(author.get("Name", "") for author in plugin.get("Authors", []))
            return authors, plugin.get("License", "")
        if parent.name == "wallpapers":
            return None
    return None


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def _open_file(path: Path) -> Image.Image:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image


def collect_package_photos(package: str, version: str, tree: Path) -> list[Photo]:
    """Build photo records for a package's allow-list, reading licenses from its debian/copyright.

    A listed file that is missing, or whose license is not in FREE_LICENSES, is skipped with a warning.
    """
    copyright_file = tree / "usr/share/doc" / package / "copyright"
    if not copyright_file.is_file():
        raise HywuError(f"copyright file not found: {copyright_file}. The package layout changed, so check the .deb.")
    stanzas = parse_copyright(copyright_file.read_text(encoding="utf-8"))

    photos = []
    for entry in PACKAGE_PHOTOS[package]:
        image_path = (tree / entry.path).resolve()
        if not image_path.is_file():
            logger.warning("skipping %s: %s not found in %s %s", entry.subject, entry.path, package, version)
            continue

        stanza = find_stanza(stanzas, entry.copyright_path)
        if stanza is None or stanza.license not in FREE_LICENSES:
            found = stanza.license if stanza else "no matching Files: paragraph"
            logger.warning("skipping %s: license of %s is unclear or not free (%s)", entry.path, package, found)
            continue

        author = stanza.copyright
        upstream_license = ""
        metadata = _read_plasma_metadata(image_path)
        if metadata is not None:
            author, upstream_license = metadata
            if upstream_license not in FREE_LICENSES:
                logger.warning("skipping %s: metadata.json license %r is not free", entry.path, upstream_license)
                continue

        photos.append(
            Photo(
                name=package_output_name(package, entry),
                source=package,
                source_version=version,
                original_path=entry.path,
                subject=entry.subject,
                category=entry.category,
                license=stanza.license,
                license_source=f"usr/share/doc/{package}/copyright (Files: {' '.join(stanza.files)})",
                author=author,
                original_size=_image_size(image_path),
                upstream_license=upstream_license,
                load=functools.partial(_open_file, image_path),
            )
        )
    return photos


# --------------------------------------------------------------------------------------------------------------
# Library sample images
# --------------------------------------------------------------------------------------------------------------


def _readme_section(readme: str, file_name: str) -> str:
    """Return the part of scikit-learn's image README that describes one file."""
    match = re.search(rf"Image: {re.escape(file_name)}\n(.*?)(?=\nImage: |\Z)", readme, flags=re.DOTALL)
    return match.group(1) if match else ""


def _library_photo(entry: LibraryPhoto) -> Photo | None:
    """Locate a library sample, check its documented license and return its record, or None to skip it."""
    import numpy as np
    from PIL import Image

    if entry.library == "scikit-image":
        import skimage
        import skimage.data

        loader = getattr(skimage.data, entry.name)
        documentation = inspect.getdoc(loader) or ""
        version = skimage.__version__
        data_dir = Path(skimage.data.__file__).parent
        files = sorted(data_dir.glob(f"{entry.name}.*"))
        original_path = f"skimage/data/{files[0].name}" if files else f"skimage.data.{entry.name}()"
        license_source = f"skimage.data.{entry.name} docstring"

        def load() -> Image.Image:
            return Image.fromarray(np.asarray(loader()))

    elif entry.library == "scikit-learn":
        import sklearn
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        paths = [Path(path) for path in bunch.filenames]
        index = next((i for i, path in enumerate(paths) if path.name == entry.name), None)
        if index is None:
            logger.warning("skipping %s: load_sample_images() no longer returns it", entry.name)
            return None
        documentation = _readme_section(bunch.DESCR, entry.name)
        version = sklearn.__version__
        original_path = f"sklearn/datasets/images/{entry.name}"
        license_source = "sklearn/datasets/images/README.txt (load_sample_images().DESCR)"
        image_array = bunch.images[index]

        def load() -> Image.Image:
            return Image.fromarray(image_array)

    elif entry.library == "matplotlib":
        import matplotlib
        from matplotlib import cbook

        path = Path(cbook.get_sample_data(entry.name, asfileobj=False))
        documentation = ""
        version = matplotlib.__version__
        original_path = f"matplotlib/mpl-data/sample_data/{entry.name}"
        license_source = "matplotlib/matplotlib pull request 1599, which added the file"
        load = functools.partial(_open_file, path)

    else:
        raise HywuError(f"unknown library {entry.library!r} in LIBRARY_PHOTOS")

    if entry.evidence is not None and entry.evidence not in documentation:
        logger.warning(
            "skipping %s %s: its documentation no longer contains %r, so the license %s is unconfirmed",
            entry.library,
            entry.name,
            entry.evidence,
            entry.license,
        )
        return None

    image = load()
    return Photo(
        name=output_name(entry.library, Path(entry.name).stem),
        source=entry.library,
        source_version=version,
        original_path=original_path,
        subject=entry.subject,
        category=entry.category,
        license=entry.license,
        license_source=license_source,
        author=entry.author,
        original_size=image.size,
        note=entry.note,
        load=load,
    )


def collect_library_photos() -> list[Photo]:
    """Build photo records for LIBRARY_PHOTOS, skipping entries whose documented license no longer matches."""
    photos = []
    for entry in LIBRARY_PHOTOS:
        photo = _library_photo(entry)
        if photo is not None:
            photos.append(photo)
    return photos


# --------------------------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------------------------


def difference_hash(image: Image.Image) -> int:
    """Return a 256-bit difference hash: one bit per horizontally adjacent pixel pair of a 17x16 greyscale copy."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(image.convert("L").resize((17, 16), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = pixels[:, 1:] > pixels[:, :-1]
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def drop_duplicates(photos: list[Photo], hashes: dict[str, int]) -> list[Photo]:
    """Keep only the largest copy of each picture, comparing difference hashes.

    The allow-lists already name the largest file of each picture. This check catches a duplicate added by a
    later edit of the lists.
    """
    by_area = sorted(photos, key=lambda photo: (-photo.original_size[0] * photo.original_size[1], photo.name))
    unique: list[Photo] = []
    for photo in by_area:
        twin = next(
            (
                other
                for other in unique
                if bin(hashes[photo.name] ^ hashes[other.name]).count("1") <= DUPLICATE_MAX_BITS
            ),
            None,
        )
        if twin is not None:
            logger.warning("skipping %s: same picture as the larger %s", photo.name, twin.name)
            continue
        unique.append(photo)
    return sorted(unique, key=lambda photo: photo.name)


def split_photos(photos: list[Photo]) -> tuple[list[Photo], list[Photo], list[Photo]]:
    """Split photos into train and held-out sets and choose the example photos.

    Photos are ordered by the SHA-256 of their output file name. For each category, in CATEGORIES order, the
    first photo with an EXAMPLE_LICENSES license from a source not yet picked is held out and becomes an example
    (falling back to any source, then to any license). Further photos are then held out in hash order until
    HELDOUT_FRACTION of them, and at least MIN_HELDOUT, are held out.

    Returns (train, heldout, examples), each sorted by file name.
    """
    ordered = sorted(photos, key=lambda photo: split_hash(photo.name))
    heldout: list[Photo] = []
    examples: list[Photo] = []
    used_sources: set[str] = set()

    for category in CATEGORIES:
        in_category = [photo for photo in ordered if photo.category == category and photo not in heldout]
        licensed = [photo for photo in in_category if photo.example_ok]
        new_source = [photo for photo in licensed if photo.source not in used_sources]
        candidates = new_source or licensed or in_category
        if not candidates:
            logger.warning("no photo in category %s, so the held-out set does not cover it", category)
            continue
        pick = candidates[0]
        heldout.append(pick)
        used_sources.add(pick.source)
        if pick.example_ok:
            examples.append(pick)
        else:
            logger.warning("no %s photo with a license allowed in examples/, so no example covers it", category)

    target = max(MIN_HELDOUT, round(len(photos) * HELDOUT_FRACTION))
    for photo in ordered:
        if len(heldout) >= target:
            break
        if photo not in heldout:
            heldout.append(photo)

    train = [photo for photo in photos if photo not in heldout]

    def by_name(items: list[Photo]) -> list[Photo]:
        return sorted(items, key=lambda photo: photo.name)

    return by_name(train), by_name(heldout), examples


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def to_rgb(image: Image.Image) -> Image.Image:
    """Return an RGB copy, applying EXIF orientation and compositing any transparency over white."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def fit_long_side(image: Image.Image, max_side: int) -> Image.Image:
    """Return the image downscaled with Lanczos so that its long side is at most `max_side` pixels."""
    from PIL import Image

    width, height = image.size
    scale = max_side / max(width, height)
    if scale >= 1:
        return image
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(new_size, Image.Resampling.LANCZOS)


def write_jpeg(image: Image.Image, path: Path, max_side: int, quality: int) -> tuple[int, int]:
    """Write an RGB JPEG with the long side at most `max_side` pixels and return the written size."""
    rgb = fit_long_side(to_rgb(image), max_side)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb.save(path, format="JPEG", quality=quality)
    return rgb.size


def write_dataset(out: Path, train: list[Photo], heldout: list[Photo], max_side: int) -> list[dict[str, object]]:
    """Write the split photos and manifest.json under `out` and return the manifest entries.

    JPEG files in out/train and out/heldout that the new split does not contain are deleted, so a photo that
    left the allow-list or changed split does not linger.
    """
    expected_files = {
        f"{split}/{photo.name}" for split, photos in (("train", train), ("heldout", heldout)) for photo in photos
    }
    for split in SPLITS:
        for stale in (out / split).glob("*.jpg"):
            if f"{split}/{stale.name}" not in expected_files:
                logger.info("deleting stale %s", stale)
                stale.unlink()

    entries: list[dict[str, object]] = []
    for split, photos in (("train", train), ("heldout", heldout)):
        for photo in photos:
            size = write_jpeg(photo.load(), out / split / photo.name, max_side, TRAIN_JPEG_QUALITY)
            entry: dict[str, object] = {
                "file": f"{split}/{photo.name}",
                "split": split,
                "source": photo.source,
                "source_version": photo.source_version,
                "original_path": photo.original_path,
                "original_size": list(photo.original_size),
                "size": list(size),
                "subject": photo.subject,
                "category": photo.category,
                "license": photo.license,
                "license_source": photo.license_source,
                "author": photo.author,
            }
            if photo.upstream_license:
                entry["upstream_license"] = photo.upstream_license
            if photo.note:
                entry["note"] = photo.note
            entries.append(entry)

    entries.sort(key=lambda entry: str(entry["file"]))
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return entries


def write_example(photo: Photo, path: Path) -> tuple[int, int, int]:
    """Write an example JPEG under EXAMPLE_MAX_BYTES, lowering quality from 90 in steps of 5 as needed.

    Returns (width, height, bytes). Raises HywuError when quality 60 is still too large.
    """
    for quality in range(90, 55, -5):
        width, height = write_jpeg(photo.load(), path, EXAMPLE_MAX_SIDE, quality)
        size = path.stat().st_size
        if size <= EXAMPLE_MAX_BYTES:
            return width, height, size
    raise HywuError(f"example {path} is {size} bytes at JPEG quality 60, over the {EXAMPLE_MAX_BYTES}-byte limit")


def _license_text(photo: Photo) -> str:
    text = f"[{photo.license}]({LICENSE_URLS[photo.license]})" if photo.license in LICENSE_URLS else photo.license
    if photo.upstream_license:
        upstream = photo.upstream_license
        upstream_text = f"[{upstream}]({LICENSE_URLS[upstream]})" if upstream in LICENSE_URLS else upstream
        text += f" per debian/copyright; {upstream_text} per the wallpaper's metadata.json"
    return text


def write_examples(examples: list[Photo], folder: Path) -> list[str]:
    """Write the example photos, named by subject, and folder/SOURCES.md. Return the written file names."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Example photos",
        "",
        "Held-out photos from `python -m hywu_cli.photos`, downscaled to at most "
        f"{EXAMPLE_MAX_SIDE} px on the long side and re-encoded as JPEG. No other change was made.",
        "",
        "| File | Subject | Source | Original file | Author | License |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    names = []
    for photo in examples:
        file_name = re.sub(r"[^a-z0-9]+", "-", photo.subject.lower()).strip("-") + ".jpg"
        width, height, size = write_example(photo, folder / file_name)
        logger.info("wrote example %s (%dx%d, %d KiB)", folder / file_name, width, height, size // 1024)
        names.append(file_name)
        author = re.sub(r"\s*<[^>]*>", "", photo.author) + (f" ({photo.note})" if photo.note else "")
        lines.append(
            f"| {file_name} | {photo.subject} | {photo.source} {photo.source_version} | `{photo.original_path}` "
            f"| {author} | {_license_text(photo)} |"
        )
    lines += [
        "",
        "Package licenses are read from `usr/share/doc/<package>/copyright` in each .deb. Library licenses are",
        "those stated in the library's documentation of the image (see `LIBRARY_PHOTOS` in",
        "`src/hywu_cli/photos.py`).",
        "",
    ]
    (folder / "SOURCES.md").write_text("\n".join(lines), encoding="utf-8")
    return names


# --------------------------------------------------------------------------------------------------------------
# Public helpers for the trainer
# --------------------------------------------------------------------------------------------------------------


def list_photos(root: Path, split: str) -> list[Path]:
    """Return the sorted JPEG files of one split (`train` or `heldout`) of a data set built by this module."""
    if split not in SPLITS:
        raise HywuError(f"invalid split {split!r}: expected one of {', '.join(SPLITS)}")
    folder = Path(root) / split
    if not folder.is_dir():
        raise HywuError(f"photo folder not found: {folder}. Build it with `python -m hywu_cli.photos --out {root}`.")
    return sorted(path for path in folder.glob("*.jpg") if path.is_file())


def add_user_photos(folder: Path) -> list[Path]:
    """Return every file under `folder`, recursively and sorted, that Pillow can open and decode as an image.

    Each file is decoded in full, because `Image.verify()` accepts a truncated JPEG. JPEGs are decoded at 1/8
    scale through `Image.draft()`, which still reads the whole file but costs far less. Files that fail (text
    files, empty or truncated images, images over Pillow's decompression-bomb limit) are skipped and logged at
    debug level. Raises HywuError when `folder` is not a directory.
    """
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise HywuError(f"photo folder not found or not a directory: {folder}. Pass an existing folder to --photos.")

    photos = []
    skipped = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            with Image.open(path) as image:
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            logger.debug("skipping %s: %s", path, error)
            skipped += 1
            continue
        photos.append(path)

    if skipped:
        logger.info("skipped %d files in %s that Pillow cannot open as images", skipped, folder)
    return photos


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


def build(out: Path, cache: Path, examples_dir: Path | None, max_side: int) -> dict[str, object]:
    """Fetch, select, split and write the photos. Return a summary for the log."""
    photos: list[Photo] = []
    debs = download_debs(PACKAGES, cache)
    for package, deb in debs.items():
        tree = unpack_deb(deb, cache / "tree" / package)
        photos.extend(collect_package_photos(package, _deb_version(deb), tree))
    photos.extend(collect_library_photos())

    hashes = {photo.name: difference_hash(photo.load()) for photo in photos}
    names = [photo.name for photo in photos]
    if len(set(names)) != len(names):
        raise HywuError("two allow-list entries map to the same output file name. Rename one of them.")
    photos = drop_duplicates(photos, hashes)

    train, heldout, examples = split_photos(photos)
    entries = write_dataset(out, train, heldout, max_side)
    example_names = write_examples(examples, examples_dir) if examples_dir is not None else []

    per_source: dict[str, dict[str, int]] = {}
    for entry in entries:
        counts = per_source.setdefault(str(entry["source"]), {"train": 0, "heldout": 0})
        counts[str(entry["split"])] += 1
    return {
        "train": len(train),
        "heldout": len(heldout),
        "per_source": per_source,
        "licenses": sorted({str(entry["license"]) for entry in entries}),
        "examples": example_names,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hywu_cli.photos",
        description="Gather freely licensed real photographs from Debian wallpaper packages and Python library "
        "samples, and write a train/held-out split with a manifest.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/photos"), help="output folder (default: data/photos)")
    parser.add_argument(
        "--cache", type=Path, default=Path("data/debs"), help="folder for downloaded and unpacked .deb files"
    )
    parser.add_argument(
        "--examples",
        type=Path,
        default=None,
        help="also write four permissively licensed held-out photos and SOURCES.md to this folder",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=TRAIN_MAX_SIDE,
        help=f"maximum long side of the written photos in pixels (default: {TRAIN_MAX_SIDE})",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    if args.max_side < 64:
        parser.error(f"--max-side must be at least 64 pixels, got {args.max_side}")

    start = time.monotonic()
    try:
        summary = build(args.out, args.cache, args.examples, args.max_side)
    except HywuError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    logger.info("wrote %d train and %d held-out photos to %s", summary["train"], summary["heldout"], args.out)
    logger.info("per source: %s", json.dumps(summary["per_source"], sort_keys=True))
    logger.info("licenses: %s", ", ".join(summary["licenses"]))  # type: ignore[arg-type]
    logger.info("finished in %.1f s", time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
