"""Model folders: the manifest format, integrity checks and name lookup.

A model is a folder with a `manifest.json` at its root:

    {"name": "hywu-lite", "version": "0.1.0", "format": 1,
     "components": {...}, "licences": {"<component>": "<licence text>"},
     "files": [{"path": "editor/config.json", "sha256": "<64 hex digits>", "size": 123}, ...]}

`files` lists every file of the folder except manifest.json, with POSIX paths relative to the folder. A model
name such as "hywu-lite" is looked up first in `$HYWU_HOME/models/<name>` (HYWU_HOME defaults to
~/.cache/hywu), then in `weights/<name>` of the source checkout that an editable install runs from. Only a value
that looks like a path (see `looks_like_path`) names a folder directly, so a folder in the current directory
that happens to carry a model's name never shadows the lookup.

This module imports neither torch nor safetensors, so the CLI can check model files before loading anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from hywu_cli.errors import ModelFilesError


logger = logging.getLogger(__name__)

DEFAULT_MODEL = "hywu-lite"
HOME_ENV = "HYWU_HOME"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
LFS_POINTER_PREFIX = b"version https://git-lfs"
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

# Byte size of one element for each safetensors dtype, used to check the header against the data section.
SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}
# safetensors itself rejects headers above 100 MB; a larger length means the file is not safetensors.
MAX_SAFETENSORS_HEADER_BYTES = 100_000_000


def hywu_home() -> Path:
    """Return the hywu data folder: `$HYWU_HOME`, or ~/.cache/hywu when it is unset."""
    configured = os.environ.get(HOME_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hywu"


def models_root() -> Path:
    """Return the folder that contains downloaded models, `$HYWU_HOME/models`."""
    return hywu_home() / "models"


def source_checkout() -> Path | None:
    """Return the source checkout this package runs from (the folder holding pyproject.toml), or None.

    An editable install (`pip install -e .`) imports hywu_cli from `<checkout>/src/hywu_cli`, so walking up from
    this file finds the checkout and its `weights/` folder. A wheel install has no pyproject.toml above it.
    """
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def download_hint(
    name: str | None = None, *, folder: str | os.PathLike[str] | None = None, mention_checkout: bool = True
) -> str:
    """Return the hint, appended to model file errors, on how to get a complete copy of the model.

    `name` is the model name the user gave. For a model given as a folder path, pass `folder` instead, so the
    hint downloads into that folder rather than guessing a model name from the folder's name. For the default
    model the hint also names where the packaged copy is, unless `mention_checkout` is False.
    """
    sources = "--url URL` (an HTTP folder serving manifest.json) or `--repo-id ORG/NAME` (Hugging Face Hub)"
    if name is None and folder is not None:
        import shlex

        dest = shlex.quote(os.fspath(folder))
        return f"download a complete copy into it with `hywu download-weights --dest {dest} {sources}"
    name = name or DEFAULT_MODEL
    hint = f"download it with `hywu download-weights {name} {sources}"
    if name == DEFAULT_MODEL and mention_checkout:
        hint += (
            f"; {name} also ships in weights/{name} of the source checkout, where only an editable install "
            "(`pip install -e .` in the repository) finds it"
        )
    return hint


def is_model_name(value: str) -> bool:
    """Return whether `value` is a bare model name (letters, digits, '.', '_', '-') rather than a path."""
    return bool(MODEL_NAME_PATTERN.match(value)) and value not in (".", "..")


def looks_like_path(value: str | os.PathLike[str]) -> bool:
    """Return whether a --model value names a folder rather than a model to look up.

    A path contains a path separator, starts with '.' or '~', or is absolute.
    """
    text = os.fspath(value)
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return any(separator in text for separator in separators) or text.startswith((".", "~")) or os.path.isabs(text)


def candidate_dirs(name: str) -> list[Path]:
    """Return the folders searched for model `name`, in lookup order."""
    candidates = [models_root() / name]
    checkout = source_checkout()
    if checkout is not None:
        candidates.append(checkout / "weights" / name)
    return candidates


def resolve_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """Return the folder of a model given by name or by path.

    A value that `looks_like_path` must be an existing folder and is returned as is. Any other value must be a
    model name; it is looked up in `candidate_dirs(name)`, and the first folder that contains a manifest.json
    wins.

    Raises:
        ModelFilesError: no folder was found; the message lists where hywu looked and how to download the model.
    """
    text = os.fspath(name_or_path)
    if looks_like_path(text):
        path = Path(text).expanduser()
        if not path.is_dir():
            raise ModelFilesError(
                f"model folder not found: {text}; pass an existing folder or a model name such as {DEFAULT_MODEL}"
            )
        return path
    if not is_model_name(text):
        raise ModelFilesError(
            f"{text!r} is not a model name (letters, digits, '.', '_', '-'); "
            f"to use a model folder, pass its path, e.g. ./{text}"
        )

    candidates = candidate_dirs(text)
    for folder in candidates:
        if (folder / MANIFEST_NAME).is_file():
            return folder
    incomplete = [folder for folder in candidates if folder.is_dir()]
    if incomplete and incomplete[0] == candidates[0]:
        # A download goes to this folder, and it refuses a non-empty folder without a manifest.
        raise ModelFilesError(
            f"model folder {incomplete[0]} has no {MANIFEST_NAME}; move that folder away, then {download_hint(text)}"
        )
    if incomplete:
        raise ModelFilesError(
            f"model folder {incomplete[0]} has no {MANIFEST_NAME}, so this checkout's copy of {text} is incomplete; "
            f"{download_hint(text, mention_checkout=False)}, which puts it in {candidates[0]}, searched first"
        )
    searched = ", ".join(str(folder) for folder in candidates)
    raise ModelFilesError(f"model {text!r} not found (searched {searched}); {download_hint(text)}")


def manifest_relative_path(value: object) -> PurePosixPath:
    """Return a manifest file path after checking that it stays inside the model folder.

    Raises:
        ModelFilesError: the path is empty, absolute, contains '..' or a backslash, or names the manifest.
    """
    if not isinstance(value, str) or not value or "\\" in value or "\x00" in value:
        raise ModelFilesError(f"invalid file path in {MANIFEST_NAME}: {value!r}")
    relative = PurePosixPath(value)
    if relative.is_absolute() or ".." in relative.parts or relative.parts[0].endswith(":"):
        raise ModelFilesError(f"file path {value!r} in {MANIFEST_NAME} points outside the model folder")
    if relative.as_posix() == MANIFEST_NAME:
        raise ModelFilesError(f"{MANIFEST_NAME} must not list itself")
    return relative


def validate_manifest(data: object, origin: str = MANIFEST_NAME) -> dict:
    """Return `data` after checking it has the manifest structure described in the module docstring.

    Raises:
        ModelFilesError: a key is missing or has the wrong type; the message names `origin` and the key.
    """
    if not isinstance(data, dict):
        raise ModelFilesError(f"{origin}: expected a JSON object, got {type(data).__name__}")
    for key, expected_type in (("name", str), ("version", str), ("files", list)):
        if not isinstance(data.get(key), expected_type):
            raise ModelFilesError(f"{origin}: key {key!r} is missing or not a {expected_type.__name__}")
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelFilesError(
            f"{origin}: format {data.get('format')!r} is not supported (expected {MANIFEST_FORMAT}); "
            "upgrade hywu or download the model again"
        )
    seen: set[str] = set()
    for index, entry in enumerate(data["files"]):
        if not isinstance(entry, dict):
            raise ModelFilesError(f"{origin}: files[{index}] is not an object")
        relative = manifest_relative_path(entry.get("path"))
        if relative.as_posix() in seen:
            raise ModelFilesError(f"{origin}: {relative} is listed twice")
        seen.add(relative.as_posix())
        if not isinstance(entry.get("sha256"), str) or not SHA256_PATTERN.match(entry["sha256"]):
            raise ModelFilesError(f"{origin}: files[{index}] ({relative}) has no valid lower-case sha256")
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ModelFilesError(f"{origin}: files[{index}] ({relative}) has no valid size")
    for key in ("components", "licences"):
        if key in data and not isinstance(data[key], dict):
            raise ModelFilesError(f"{origin}: key {key!r} must be an object")
    return data


def load_manifest(folder: str | os.PathLike[str]) -> dict:
    """Read and validate `<folder>/manifest.json`.

    The error messages describe the problem only; callers that know how the model was requested add
    `download_hint`.

    Raises:
        ModelFilesError: the manifest is missing, not valid JSON or not a valid manifest.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFilesError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFilesError(f"cannot read {path}: {error}") from None
    if text.startswith(LFS_POINTER_PREFIX.decode()):
        raise ModelFilesError(f"{path} is a Git LFS pointer, not the manifest")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFilesError(f"{path} is not valid JSON ({error})") from None
    return validate_manifest(data, str(path))


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Return the hex SHA-256 digest of a file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def is_lfs_pointer(path: str | os.PathLike[str]) -> bool:
    """Return whether a file is a Git LFS pointer (the text git stores when LFS content was never fetched)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


def build_manifest(
    folder: str | os.PathLike[str],
    name: str,
    version: str,
    components: Mapping[str, object],
    licences: Mapping[str, str],
) -> dict:
    """Hash every file under `folder` except manifest.json, write `<folder>/manifest.json` and return it.

    Files are listed in sorted POSIX-path order so that rebuilding an unchanged folder gives the same manifest.

    Raises:
        ModelFilesError: a file is a Git LFS pointer, since its hash would describe the pointer, not the weights.
    """
    folder = Path(folder)
    files = []
    for path in sorted(folder.rglob("*"), key=lambda item: item.relative_to(folder).as_posix()):
        if not path.is_file():
            continue
        relative = path.relative_to(folder).as_posix()
        if relative == MANIFEST_NAME:
            continue
        if is_lfs_pointer(path):
            raise ModelFilesError(f"{path} is a Git LFS pointer; run `git lfs pull` before building the manifest")
        files.append({"path": relative, "sha256": sha256_file(path), "size": path.stat().st_size})

    manifest = {
        "name": name,
        "version": version,
        "format": MANIFEST_FORMAT,
        "components": dict(components),
        "licences": dict(licences),
        "files": files,
    }
    write_json_atomic(folder / MANIFEST_NAME, manifest)
    return manifest


def write_json_atomic(path: Path, data: object) -> None:
    """Write `data` as indented UTF-8 JSON through a temporary file and `os.replace`."""
    import tempfile

    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, ensure_ascii=False)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def verify_model_dir(folder: str | os.PathLike[str], *, check_hashes: bool = True) -> list[str]:
    """Return the problems found in a model folder, one sentence each; an empty list means it is complete.

    Checks that manifest.json is valid and that every listed file exists with the listed size, is not a Git LFS
    pointer, has a readable header when it is a .safetensors file and, when `check_hashes` is True, has the
    listed SHA-256. Hashing reads every byte, so callers that only need a quick check before loading pass
    `check_hashes=False`; that check also skips Markdown files (the model card), which loading never reads, so an
    edited model card does not stop the model from loading.
    """
    folder = Path(folder)
    try:
        manifest = load_manifest(folder)
    except ModelFilesError as error:
        return [str(error)]

    problems = []
    for entry in manifest["files"]:
        relative = entry["path"]
        path = folder / relative
        if not check_hashes and path.suffix == ".md":
            continue
        if not path.is_file():
            problems.append(f"{relative}: missing")
            continue
        size = path.stat().st_size
        if is_lfs_pointer(path):
            problems.append(f"{relative}: Git LFS pointer instead of the file content ({size} bytes)")
            continue
        if size != entry["size"]:
            problems.append(f"{relative}: {size} bytes, expected {entry['size']}")
            continue
        if path.suffix == ".safetensors":
            header_problem = safetensors_header_problem(path)
            if header_problem:
                problems.append(f"{relative}: {header_problem}")
                continue
        if check_hashes:
            actual = sha256_file(path)
            if actual != entry["sha256"]:
                problems.append(
                    f"{relative}: sha256 {actual[:12]}... does not match the manifest ({entry['sha256'][:12]}...)"
                )
    return problems


def check_model_dir(folder: str | os.PathLike[str], *, check_hashes: bool = False, name: str | None = None) -> None:
    """Raise ModelFilesError listing every problem that `verify_model_dir` finds, with one download hint.

    `name` is the model name the folder was found under; leave it None for a folder given as a path.
    """
    folder = Path(folder)
    problems = verify_model_dir(folder, check_hashes=check_hashes)
    if problems:
        listed = "; ".join(problems)
        hint = download_hint(name) if name is not None else download_hint(folder=folder)
        raise ModelFilesError(f"model folder {folder} is broken: {listed}; {hint}")


def safetensors_header_problem(path: str | os.PathLike[str]) -> str | None:
    """Return why a .safetensors file is unusable, judged from its header alone, or None when it looks valid.

    The format is an 8-byte little-endian header length, a JSON header mapping tensor names to dtype, shape and
    data_offsets, then the data section. The check reads only the header, so it costs the same for any file
    size, and it catches Git LFS pointers and files cut short by an interrupted copy.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        if prefix + file.read(len(LFS_POINTER_PREFIX) - 8) == LFS_POINTER_PREFIX:
            return "Git LFS pointer instead of the file content"
        if len(prefix) < 8:
            return f"only {size} bytes, too short for a safetensors header"
        header_length = int.from_bytes(prefix, "little")
        if header_length > min(size - 8, MAX_SAFETENSORS_HEADER_BYTES):
            return f"header length {header_length} exceeds the {size}-byte file (file truncated or not safetensors)"
        file.seek(8)
        raw_header = file.read(header_length)
    try:
        header = json.loads(raw_header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "header is not valid JSON (file corrupt or not safetensors)"
    if not isinstance(header, dict):
        return "header is not a JSON object"

    data_bytes = size - 8 - header_length
    data_end = 0
    for tensor_name, info in header.items():
        if tensor_name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(value, int) for value in offsets)):
            return f"tensor {tensor_name!r} has no valid data_offsets"
        begin, end = offsets
        if not 0 <= begin <= end:
            return f"tensor {tensor_name!r} has data_offsets {offsets} out of order"
        element_bytes = SAFETENSORS_DTYPE_BYTES.get(info.get("dtype"))
        shape = info.get("shape")
        if element_bytes is not None and isinstance(shape, list) and all(isinstance(dim, int) for dim in shape):
            count = 1
            for dim in shape:
                count *= dim
            if count * element_bytes != end - begin:
                return f"tensor {tensor_name!r} needs {count * element_bytes} bytes but its offsets span {end - begin}"
        data_end = max(data_end, end)
    if data_end != data_bytes:
        return (
            f"data section is {data_bytes} bytes but the header describes {data_end} bytes (file truncated or padded)"
        )
    return None


def check_safetensors_file(path: str | os.PathLike[str], *, model_name: str | None = None) -> None:
    """Validate a .safetensors file from its header without loading tensors.

    Raises:
        ModelFilesError: the file is missing, a Git LFS pointer, truncated or has an invalid header. The message
            names the file and the `hywu download-weights` command that fixes it.
    """
    path = Path(path)
    try:
        problem = safetensors_header_problem(path)
    except FileNotFoundError:
        problem = "missing"
    except OSError as error:
        problem = f"cannot be read ({error.strerror or error})"
    if problem:
        raise ModelFilesError(f"{path}: {problem}; {download_hint(model_name)}")
