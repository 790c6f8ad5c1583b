"""Model downloads from the Hugging Face Hub or from a plain HTTP(S) folder.

Both sources must provide a `manifest.json` (see `hywu_cli.models`) listing every file with its size and
SHA-256. A download never produces a model folder that looks complete but is not:

1. files are fetched into a staging folder next to the destination, `.<name>.download/`;
2. an HTTP file is first written to `<file>.part`, and an interrupted transfer resumes from the end of the
   `.part` file with a Range request, within the same run (`retries`) or in a later run;
3. every file is checked against the manifest's size and SHA-256; a mismatching file is fetched once more
   from scratch and reported if it still does not match;
4. only a fully verified staging folder is published. A new destination is the staging folder renamed. An
   existing destination must be empty or contain a model (a manifest.json), because hywu deletes only files
   that a manifest lists. In such a folder the old manifest is moved aside and the new files are moved in.
   Then the old model's files that the new manifest no longer lists are deleted, and the new manifest is
   written last. Other files in that folder are left alone. Files the old copy shares with the new manifest
   are reused instead of downloaded.

Setting HF_HUB_OFFLINE=1 makes every remote download fail at once, for both sources.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hywu_cli import models
from hywu_cli.errors import DownloadError, ModelFilesError, OutputPathError


logger = logging.getLogger(__name__)

OFFLINE_ENV = "HF_HUB_OFFLINE"
DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
RETRY_DELAY_S = 0.5  # wait before retry n is n * RETRY_DELAY_S, at most 5 s
# Transient failures worth retrying: dropped connections, timeouts and short reads.
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException, urllib.error.URLError)
# The old manifest.json while a new model is moved into an existing folder. Its presence marks the folder as a
# model under replacement, so rerunning an interrupted download is allowed to finish the job.
REPLACED_MANIFEST_NAME = ".manifest.json.replaced"


class TransferProgress(Protocol):
    """Receiver of download progress; the CLI implements it with a Rich progress bar."""

    def start(self, total_bytes: int, file_count: int) -> None:
        """Announce the total size of the files still to fetch."""

    def update(self, completed_bytes: int, current_file: str) -> None:
        """Report the bytes fetched so far, across all files, and the file being fetched."""


class _NoProgress:
    def start(self, total_bytes: int, file_count: int) -> None:
        pass

    def update(self, completed_bytes: int, current_file: str) -> None:
        pass


@dataclass
class DownloadResult:
    """Outcome of `download_model`.

    Attributes:
        path: the model folder.
        file_count: files listed in the manifest.
        total_bytes: their total size.
        fetched_bytes: bytes transferred in this run (0 when only a local copy was verified).
        source: where the files came from: an URL, "hf://<repo id>@<revision>" or "local".
    """

    path: Path
    file_count: int
    total_bytes: int
    fetched_bytes: int
    source: str


class _IncompleteTransferError(Exception):
    """A transfer ended before the expected number of bytes arrived; retried like a dropped connection."""


def is_offline() -> bool:
    """Return whether HF_HUB_OFFLINE is set to a true value (1, true, yes or on, in any case)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def default_dest(name: str) -> Path:
    """Return where `download_model` puts model `name` by default, `$HYWU_HOME/models/<name>`."""
    return models.models_root() / name


def staging_dir(dest: Path) -> Path:
    """Return the staging folder used while downloading into `dest`; kept between runs so transfers resume.

    `dest` is made absolute first, so that `.` and `..` get a staging folder named after the real folder.
    """
    dest = Path(os.path.abspath(dest))
    return dest.parent / f".{dest.name}.download"


def check_download_target(name: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute destination folder of a download after the checks that need no network.

    Raises:
        DownloadError: HF_HUB_OFFLINE is set.
        OutputPathError: the destination is a file, or a non-empty folder without a manifest.json, whose files
            hywu would otherwise mix with the model's.
    """
    destination = Path(os.path.abspath(Path(dest).expanduser())) if dest is not None else default_dest(name)
    if is_offline():
        raise DownloadError(
            f"{OFFLINE_ENV} is set, so hywu will not download {name}; unset {OFFLINE_ENV} to download, "
            f"or copy a complete model folder to {destination}"
        )
    if destination.exists() and not destination.is_dir():
        raise OutputPathError(f"cannot download into {destination}: it is a file; pass --dest with a folder")
    if destination.is_dir() and not _contains_model(destination) and any(destination.iterdir()):
        raise OutputPathError(
            f"cannot download into {destination}: the folder is not empty and contains no model "
            f"(no {models.MANIFEST_NAME}); pass a new or empty folder, e.g. --dest {destination / name}, "
            "or empty this one"
        )
    return destination


def _contains_model(folder: Path) -> bool:
    return (folder / models.MANIFEST_NAME).is_file() or (folder / REPLACED_MANIFEST_NAME).is_file()


def download_model(
    name: str = models.DEFAULT_MODEL,
    *,
    dest: str | os.PathLike[str] | None = None,
    url: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: TransferProgress | None = None,
) -> DownloadResult:
    """Download model `name` into `dest`, or verify an existing local copy when no source is given.

    Args:
        name: model name; also the default destination folder name.
        dest: destination folder; defaults to `default_dest(name)`.
        url: HTTP(S) base URL of the model folder; `<url>/manifest.json` must list the files.
        repo_id: Hugging Face Hub repository holding the model folder at its root, with a manifest.json.
        revision: Hub branch, tag or commit; only with `repo_id`.
        retries: extra attempts per HTTP file after a dropped connection, resuming where it stopped.
        timeout: HTTP socket timeout in seconds.
        progress: receiver of byte counts during HTTP downloads. Hub downloads show huggingface_hub's own bars.

    Raises:
        DownloadError: offline mode, an HTTP or Hub error, or files that still do not match the manifest.
        OutputPathError: `dest` is a file or a non-empty folder that contains no model.
        ModelFilesError: no source was given and the local copy is missing or broken.
    """
    if url and repo_id:
        raise DownloadError("pass either --url or --repo-id, not both")
    if revision and not repo_id:
        raise DownloadError("--revision only applies to --repo-id downloads")
    progress = progress or _NoProgress()

    if not url and not repo_id:
        return verify_local_copy(name, dest)

    destination = check_download_target(name, dest)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(destination)
    staging.mkdir(exist_ok=True)
    if url:
        manifest, fetched = _download_http(url, destination, staging, retries, timeout, progress)
        source = url
    else:
        manifest, fetched = _download_hub(repo_id, revision, destination, staging)
        source = f"hf://{repo_id}@{revision or 'main'}"

    _publish(staging, destination, manifest)
    return DownloadResult(
        path=destination,
        file_count=len(manifest["files"]),
        total_bytes=sum(entry["size"] for entry in manifest["files"]),
        fetched_bytes=fetched,
        source=source,
    )


def verify_local_copy(name: str, dest: str | os.PathLike[str] | None = None) -> DownloadResult:
    """Verify every file of a local model (by hash) and return where it is.

    `dest` when given, else the folder `models.resolve_model_dir(name)` finds, which for the default model is
    the copy packaged in the source checkout's `weights/` folder.

    Raises:
        ModelFilesError: the model is missing or a file does not match its manifest.
    """
    folder = Path(dest).expanduser() if dest is not None else models.resolve_model_dir(name)
    if not (folder / models.MANIFEST_NAME).is_file():
        raise ModelFilesError(f"no model at {folder}; pass --url or --repo-id to download {name} there")
    problems = models.verify_model_dir(folder, check_hashes=True)
    if problems:
        raise ModelFilesError(
            f"local copy of {name} at {folder} is broken: {'; '.join(problems)}; "
            "pass --url or --repo-id to download a fresh copy"
        )
    manifest = models.load_manifest(folder)
    return DownloadResult(
        path=folder,
        file_count=len(manifest["files"]),
        total_bytes=sum(entry["size"] for entry in manifest["files"]),
        fetched_bytes=0,
        source="local",
    )


# --- HTTP(S) -------------------------------------------------------------------------------------------------


def _file_url(base_url: str, relative: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(relative)


def _request(url: str, timeout: float, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    from hywu_cli import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"hywu/{__version__}", **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)  # the scheme is checked in _download_http


def _http_error_message(url: str, error: urllib.error.HTTPError) -> str:
    if error.code == 404:
        return f"{url}: HTTP 404 Not Found; check --url and that the server lists this file"
    return f"{url}: HTTP {error.code} {error.reason}"


def _download_http(
    base_url: str, destination: Path, staging: Path, retries: int, timeout: float, progress: TransferProgress
) -> tuple[dict, int]:
    """Fetch manifest and files into `staging`; return the manifest and the bytes transferred."""
    scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"--url must start with http:// or https://, got {base_url!r}")

    # 1. Fetch and validate the manifest
    manifest_url = _file_url(base_url, models.MANIFEST_NAME)
    try:
        with _request(manifest_url, timeout) as response:
            manifest_bytes = response.read()
    except urllib.error.HTTPError as error:
        raise DownloadError(_http_error_message(manifest_url, error)) from None
    except TRANSIENT_ERRORS as error:
        raise DownloadError(f"cannot fetch {manifest_url}: {_reason(error)}") from None
    try:
        manifest = models.validate_manifest(json.loads(manifest_bytes), manifest_url)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DownloadError(f"{manifest_url} is not valid JSON ({error})") from None
    except ModelFilesError as error:
        raise DownloadError(str(error)) from None

    # 2. Reuse files already in staging or at the destination, and list what remains to fetch
    pending = [entry for entry in manifest["files"] if not _stage_existing(entry, staging, destination)]
    done_bytes = 0
    progress.start(sum(entry["size"] for entry in pending), len(pending))

    # 3. Fetch the rest, each through a resumable .part file
    fetched = 0
    for entry in pending:
        target = staging / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        file_url = _file_url(base_url, entry["path"])

        def report(part_bytes: int, base: int = done_bytes, path: str = entry["path"]) -> None:
            progress.update(base + part_bytes, path)

        fetched += _fetch_verified(file_url, target, entry, retries, timeout, report)
        done_bytes += entry["size"]
        progress.update(done_bytes, entry["path"])

    (staging / models.MANIFEST_NAME).write_bytes(manifest_bytes)
    return manifest, fetched


def _stage_existing(entry: dict, staging: Path, destination: Path) -> bool:
    """Return whether a verified copy of `entry` is now in staging, reusing one from the destination if any."""
    target = staging / entry["path"]
    if _matches(target, entry):
        return True
    target.unlink(missing_ok=True)
    previous = destination / entry["path"]
    if destination.is_dir() and _matches(previous, entry):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(previous, target)
        except OSError:
            shutil.copy2(previous, target)
        logger.debug("reusing %s from %s", entry["path"], destination)
        return True
    return False


def _matches(path: Path, entry: dict) -> bool:
    return path.is_file() and path.stat().st_size == entry["size"] and models.sha256_file(path) == entry["sha256"]


def _fetch_verified(
    url: str, target: Path, entry: dict, retries: int, timeout: float, report: Callable[[int], None]
) -> int:
    """Download `url` to `target` and check it against `entry`, fetching once more from scratch on a mismatch."""
    part = target.with_name(target.name + ".part")
    fetched = 0
    for attempt in (1, 2):
        fetched += _fetch_resumable(url, part, entry["size"], retries, timeout, report)
        actual = models.sha256_file(part)
        if actual == entry["sha256"]:
            os.replace(part, target)
            return fetched
        part.unlink()
        if attempt == 1:
            logger.warning(
                "%s: sha256 mismatch (got %s, expected %s); fetching it again", url, actual, entry["sha256"]
            )
    raise DownloadError(
        f"{entry['path']} from {url} does not match the manifest: sha256 {actual}, expected {entry['sha256']}; "
        "the server copy is corrupt or the manifest is out of date"
    )


def _fetch_resumable(
    url: str, part: Path, size: int, retries: int, timeout: float, report: Callable[[int], None]
) -> int:
    """Bring `part` to `size` bytes, resuming after dropped connections; return the bytes transferred."""
    received = [0]  # bytes written to `part` by all attempts, including failed ones
    attempt = 0
    while True:
        try:
            _transfer(url, part, size, timeout, report, received)
            return received[0]
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt >= retries:
                raise DownloadError(_http_error_message(url, error)) from None
            reason = f"HTTP {error.code}"
        except (*TRANSIENT_ERRORS, _IncompleteTransferError) as error:
            if attempt >= retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"{url}: transfer interrupted at {have} of {size} bytes ({_reason(error)}); "
                    "run the same command again to resume"
                ) from None
            reason = _reason(error)
        attempt += 1
        logger.warning("%s: %s; resuming (retry %d of %d)", url, reason, attempt, retries)
        time.sleep(min(RETRY_DELAY_S * attempt, 5.0))


def _transfer(
    url: str, part: Path, size: int, timeout: float, report: Callable[[int], None], received_total: list[int]
) -> None:
    """Append the missing bytes of `url` to `part` with one request, adding the bytes received to `received_total`."""
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        return

    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = _request(url, timeout, headers)
    except urllib.error.HTTPError as error:
        if error.code != 416:
            raise
        # 416 Range Not Satisfiable: the .part file no longer fits the server's copy, so start over.
        part.unlink()
        raise _IncompleteTransferError("server rejected the resume offset") from None

    received = 0
    with response:
        content_range = response.headers.get("Content-Range", "")
        if have and not (response.status == 206 and content_range.startswith(f"bytes {have}-")):
            # The server ignored the Range header and sends the whole file.
            logger.debug("%s: server does not support resuming; restarting the file", url)
            have = 0
        with open(part, "ab" if have else "wb") as file:
            report(have)
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except http.client.IncompleteRead as error:
                    file.write(error.partial)
                    received_total[0] += len(error.partial)
                    raise
                if not chunk:
                    break
                if have + received + len(chunk) > size:
                    raise DownloadError(f"{url}: server sent more than the {size} bytes listed in the manifest")
                file.write(chunk)
                received += len(chunk)
                received_total[0] += len(chunk)
                report(have + received)
    if have + received < size:
        raise _IncompleteTransferError(f"connection closed after {have + received} of {size} bytes")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    return str(error) or type(error).__name__


# --- Hugging Face Hub ----------------------------------------------------------------------------------------


def _download_hub(repo_id: str, revision: str | None, destination: Path, staging: Path) -> tuple[dict, int]:
    """Fetch the model through the Hugging Face cache and copy it into `staging`; return the manifest and bytes."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    hub_errors = (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError)
    where = f"{repo_id}@{revision or 'main'}"

    # 1. Fetch and validate the manifest
    try:
        manifest_path = huggingface_hub.hf_hub_download(repo_id, models.MANIFEST_NAME, revision=revision)
        manifest_bytes = Path(manifest_path).read_bytes()
    except hub_errors as error:
        raise DownloadError(f"cannot fetch {models.MANIFEST_NAME} from {where}: {_first_line(error)}") from None
    try:
        manifest = models.validate_manifest(json.loads(manifest_bytes), f"{where}/{models.MANIFEST_NAME}")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DownloadError(f"{where}/{models.MANIFEST_NAME} is not valid JSON ({error})") from None
    except ModelFilesError as error:
        raise DownloadError(str(error)) from None

    # 2. Fetch the listed files into the Hugging Face cache
    pending = [entry for entry in manifest["files"] if not _stage_existing(entry, staging, destination)]
    if pending:
        try:
            snapshot = Path(
                huggingface_hub.snapshot_download(
                    repo_id, revision=revision, allow_patterns=[entry["path"] for entry in pending]
                )
            )
        except hub_errors as error:
            raise DownloadError(f"cannot download {where}: {_first_line(error)}") from None

    # 3. Copy each file into staging after checking it, fetching a mismatching one again once
    fetched = 0
    for entry in pending:
        cached = snapshot / entry["path"]
        if not _matches(cached, entry):
            logger.warning("%s: cached %s does not match the manifest; fetching it again", where, entry["path"])
            try:
                cached = Path(
                    huggingface_hub.hf_hub_download(repo_id, entry["path"], revision=revision, force_download=True)
                )
            except hub_errors as error:
                raise DownloadError(f"cannot download {entry['path']} from {where}: {_first_line(error)}") from None
            if not _matches(cached, entry):
                raise DownloadError(
                    f"{entry['path']} from {where} does not match the manifest's size and sha256; "
                    "the repository's manifest.json is out of date"
                )
        target = staging / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)
        fetched += entry["size"]

    (staging / models.MANIFEST_NAME).write_bytes(manifest_bytes)
    return manifest, fetched


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- Publishing ------------------------------------------------------------------------------------------------


def _publish(staging: Path, destination: Path, manifest: dict) -> None:
    """Verify the staging folder and rename it to `destination`, replacing an older copy."""
    # 1. Drop leftovers that the manifest does not list (old .part files, files of an earlier version)
    listed = {entry["path"] for entry in manifest["files"]} | {models.MANIFEST_NAME}
    for path in sorted(staging.rglob("*"), reverse=True):
        relative = path.relative_to(staging).as_posix()
        if path.is_file() and relative not in listed:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()

    # 2. Check sizes and headers once more (hashes were checked as each file arrived)
    problems = models.verify_model_dir(staging, check_hashes=False)
    if problems:
        raise DownloadError(f"downloaded model in {staging} is incomplete: {'; '.join(problems)}")

    # 3. Publish it: a new destination is the staging folder renamed; an existing one gets the files moved in
    if destination.exists():
        _replace_model_files(staging, destination, manifest)
    else:
        os.rename(staging, destination)
    logger.info("model ready at %s", destination)


def _replace_model_files(staging: Path, destination: Path, manifest: dict) -> None:
    """Move the verified files from `staging` into the existing `destination`, keeping files of other origin.

    While the files move, the folder has no manifest.json, so it fails the model check instead of passing it
    with a mix of old and new files.
    """
    current = destination / models.MANIFEST_NAME
    replaced = destination / REPLACED_MANIFEST_NAME

    # 1. Move the old manifest aside, and read which files belonged to the old model
    if current.is_file():
        os.replace(current, replaced)
    old_paths: set[str] = set()
    if replaced.is_file():
        try:
            old_manifest = models.validate_manifest(json.loads(replaced.read_bytes()), str(replaced))
            old_paths = {entry["path"] for entry in old_manifest["files"]}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ModelFilesError) as error:
            logger.warning("cannot read the old manifest %s (%s); keeping the old model's files", replaced, error)
    new_paths = {entry["path"] for entry in manifest["files"]}

    try:
        # 2. Move the new files in. A file reused from the old copy is a hard link to the same file, which
        #    os.replace leaves as it is.
        for relative in sorted(new_paths):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target)

        # 3. Delete the old model's files that the new manifest does not list, and folders they leave empty
        for relative in sorted(old_paths - new_paths):
            path = destination / relative
            path.unlink(missing_ok=True)
            for folder in path.parents:
                if folder == destination or not folder.is_dir() or any(folder.iterdir()):
                    break
                folder.rmdir()

        # 4. Write the new manifest last
        os.replace(staging / models.MANIFEST_NAME, current)
    except OSError as error:
        raise DownloadError(
            f"cannot move the downloaded model into {destination}: {error.strerror or error}; "
            "fix the problem and run the same command again to finish"
        ) from None
    replaced.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
