"""`hywu batch FOLDER PROMPTS`: apply every instruction of a prompts file to every image of a folder.

Each (image, instruction) pair is a job. Outputs are named `<stem>__<slug>-<hash>.<ext>`, where the slug is an
ASCII rendering of the instruction (at most 40 characters) and the hash is the first 8 hex digits of the SHA-256
of the image's relative path and the instruction. Names therefore stay short, portable (no characters that
Windows, macOS or Linux forbid) and distinct for distinct jobs, and a rerun computes the same names, which is
what --skip-existing relies on. Every job uses the same --seed. The model runs up to --batch-size images in one
forward pass, and batched arithmetic can round differently from a single image's. A batch output may therefore
differ from `hywu edit` with the same image, instruction and options by one to three 8-bit levels in some pixels.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from hywu_cli import models
from hywu_cli.cli import _common
from hywu_cli.cli._common import (
    Device,
    DeviceOption,
    Dtype,
    DtypeOption,
    JsonOption,
    LiteralOption,
    ModelOption,
    QualityOption,
    QuietOption,
    Reporter,
    SeedOption,
    StrengthOption,
    StrictOption,
    VerboseOption,
)
from hywu_cli.errors import HywuError, InvalidImageError, OutputPathError


if TYPE_CHECKING:
    from hywu_cli.imageio import LoadedImage

logger = logging.getLogger(__name__)

MANIFEST_NAME = "hywu-manifest.jsonl"
DEFAULT_OUTPUT_DIR_NAME = "hywu-out"
SLUG_MAX_CHARS = 40
STEM_MAX_BYTES = 60
HASH_HEX_DIGITS = 8
# Extensions that promise an image; such a file with other content counts as a failed input, not an ignored one.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
# Characters that Windows forbids in file names, plus the path separators of every system.
_UNSAFE_NAME_CHARACTERS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
# Rows of the failure table, or failure lines with --quiet; the manifest always lists all of them.
MAX_PROBLEM_ROWS = 50


@dataclass
class Job:
    """One (image, instruction) edit and its outcome."""

    image: Path
    instruction: str
    output: Path
    status: str = "pending"  # then "ok", "failed" or "skipped"
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RejectedFile:
    """A file of FOLDER that is not processed, with the reason; `failed` marks broken files named as images."""

    path: Path
    reason: str
    failed: bool


@dataclass
class ScanResult:
    """Images found in FOLDER, in sorted path order, and the files passed over."""

    images: list[Path]
    rejected: list[RejectedFile]
    largest_pixels: int = 0  # width x height of the largest image, from its header


def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of photos to edit.", show_default=False)],
    prompts: Annotated[
        Path,
        typer.Argument(
            help="UTF-8 text file with one instruction per line; blank lines and lines starting with # are ignored.",
            show_default=False,
        ),
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", "-o", metavar="DIR", help="Where outputs go. Default: FOLDER/hywu-out.", show_default=False
        ),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also edit images in subfolders.")] = False,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Keep outputs that already exist, to resume an interrupted batch.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images sent to the model together.")] = 4,
    strength: StrengthOption = 1.0,
    seed: SeedOption = 0,
    device: DeviceOption = Device.auto,
    dtype: DtypeOption = Dtype.auto,
    model: ModelOption = models.DEFAULT_MODEL,
    quality: QualityOption = 92,
    strict: StrictOption = False,
    literal: LiteralOption = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
) -> None:
    """Apply every instruction in PROMPTS to every image in FOLDER.

    Images are recognised by content (JPEG, PNG, WebP, TIFF, BMP, GIF). Every job is recorded in
    hywu-manifest.jsonl in the output folder. Progress and the summary go to stderr. Exits with 1 if any image
    failed.

    Example: hywu batch holiday/ prompts.txt --batch-size 8
    """
    with _common.command_session(verbose=verbose, quiet=quiet, json_output=json_output) as reporter:
        if skip_existing and overwrite:
            raise typer.BadParameter("use either --skip-existing or --overwrite", param_hint="--skip-existing")

        # 1. Check the arguments and read the prompts
        _common.check_batch_arguments(folder, prompts)
        instructions = read_prompts(prompts)
        unique = list(dict.fromkeys(instructions))
        if len(unique) < len(instructions):
            reporter.notice(f"ignoring {len(instructions) - len(unique)} repeated instruction(s) in {prompts}")
        output_dir = output_dir if output_dir is not None else folder / DEFAULT_OUTPUT_DIR_NAME
        check_output_dir_location(folder, output_dir)
        _common.check_output_dir(output_dir)

        # 2. Find the images, rejecting oversized ones from their headers, and plan the jobs
        scan = scan_images(folder, recursive=recursive, exclude=output_dir)
        if not scan.images:
            raise HywuError(no_images_message(folder, scan, recursive=recursive))
        jobs = plan_jobs(folder, scan.images, unique, output_dir)
        existing = [job for job in jobs if job.output.exists()]
        if existing and not (skip_existing or overwrite):
            raise OutputPathError(
                f"{len(existing)} output(s) already exist in {output_dir}, e.g. {existing[0].output.name}; "
                "pass --skip-existing to resume or --overwrite to replace them"
            )
        reporter.notice(f"{len(scan.images)} image(s) x {len(unique)} instruction(s) = {len(jobs)} job(s)")

        # 3. Load the model once and check the instructions against its edits
        pipe = _common.open_pipeline(model, device, dtype, reporter)
        # With --strict, one error names every rejected instruction, out of scope or unread.
        rejections = _common.Rejections(pipe.model_name, order=unique)
        scope = _common.check_scope(pipe, unique, strict=strict, reporter=reporter, rejections=rejections)
        readings = _common.read_instructions(
            pipe, unique, literal=literal, strict=strict, reporter=reporter, scope=scope, rejections=rejections
        )

        _common.announce_kernel_compile(scan.largest_pixels, reporter)

        # 4. Run the jobs, recording each one in the manifest as it finishes
        _common.create_output_dir(output_dir)
        manifest_path = output_dir / MANIFEST_NAME
        settings = {"seed": seed, "strength": strength, "model": pipe.model_name}
        with open(manifest_path, "a", encoding="utf-8") as manifest_file:
            recorder = ManifestWriter(manifest_file, settings)
            recorder.readings = {text: _common.reading_record(reading, literal) for text, reading in readings.items()}
            for rejected in scan.rejected:
                recorder.write_rejected(rejected)
            unchanged = {text for text, reading in readings.items() if reading.no_edit and not literal}
            try:
                with ProgressDisplay(reporter, total=len(jobs), unchanged_instructions=unchanged) as display:
                    run_jobs(
                        pipe,
                        jobs,
                        batch_size=batch_size,
                        strength=strength,
                        seed=seed,
                        quality=quality,
                        skip_existing=skip_existing,
                        recorder=recorder,
                        display=display,
                    )
            except KeyboardInterrupt:
                finished = sum(job.status != "pending" for job in jobs)
                reporter.error(
                    f"interrupted after {finished} of {len(jobs)} jobs; run the same command with --skip-existing "
                    "to resume"
                )
                raise typer.Exit(_common.EXIT_INTERRUPTED) from None

        # 5. Summarise
        failed = print_summary(reporter, jobs, scan.rejected, output_dir, manifest_path, unchanged)
        if failed:
            raise typer.Exit(_common.EXIT_FAILURE)


# --- prompts -------------------------------------------------------------------------------------------------


def read_prompts(path: Path) -> list[str]:
    """Return the instructions in a prompts file, in file order.

    The file is UTF-8, optionally with a byte order mark and CRLF line ends. Each line is stripped; empty lines
    and lines whose first character is # are skipped.

    Raises:
        typer.BadParameter: a line is not valid UTF-8 (the message gives its line number), the file is UTF-16,
            or it contains no instructions.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise typer.BadParameter(f"cannot read {path}: {error.strerror or error}", param_hint="PROMPTS") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise typer.BadParameter(f"{path} is UTF-16 encoded; save it as UTF-8", param_hint="PROMPTS")
    data = data.removeprefix(b"\xef\xbb\xbf")

    instructions = []
    # Split on \n only: str.splitlines would also split on characters such as U+2028 inside an instruction.
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw_line.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError as error:
            raise typer.BadParameter(
                f"{path} line {number} is not valid UTF-8 (byte 0x{raw_line[error.start]:02x} at column "
                f"{error.start + 1}); save the file as UTF-8",
                param_hint="PROMPTS",
            ) from None
        text = line.strip()
        if text and not text.startswith("#"):
            instructions.append(text)
    if not instructions:
        raise typer.BadParameter(f"{path} has no instructions (only blank lines or # comments)", param_hint="PROMPTS")
    return instructions


# --- scanning and naming -------------------------------------------------------------------------------------


def check_output_dir_location(folder: Path, output_dir: Path) -> None:
    """Raise BadParameter when the output folder is FOLDER itself or contains it, since outputs would be rescanned."""
    folder_resolved = folder.resolve()
    output_resolved = output_dir.resolve()
    if folder_resolved == output_resolved or folder_resolved.is_relative_to(output_resolved):
        raise typer.BadParameter(
            f"{str(output_dir)!r} is or contains FOLDER; choose a separate output folder such as {folder}/hywu-out",
            param_hint="--output-dir",
        )


def scan_images(folder: Path, *, recursive: bool, exclude: Path | None = None) -> ScanResult:
    """Return the images in `folder`, recognised by content, and the files passed over.

    Each image's header is read, so images above the pixel limit (`imageio.max_pixels()`) and files whose
    header Pillow rejects count as broken here, before the model loads. Hidden files and folders (names
    starting with '.') are skipped without being listed, and so is the `exclude` folder. Symbolic links to
    folders are not followed.
    """
    from hywu_cli.imageio import READ_FORMAT_NAMES, check_image_header, max_pixels, sniff_format

    pixel_limit = max_pixels()
    excluded = exclude.resolve() if exclude is not None else None
    images: list[Path] = []
    rejected: list[RejectedFile] = []
    largest = 0

    def visit(directory: Path) -> None:
        nonlocal largest
        with os.scandir(directory) as iterator:
            entries = sorted(iterator, key=lambda entry: entry.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if recursive and path.resolve() != excluded:
                    visit(path)
                continue
            if not entry.is_file():
                continue
            try:
                image_format = sniff_format(path)
                size = entry.stat().st_size
            except OSError as error:
                rejected.append(RejectedFile(path, f"cannot read: {error.strerror or error}", failed=True))
                continue
            if image_format is not None:
                try:
                    width, height = check_image_header(path, pixel_limit=pixel_limit)
                except InvalidImageError as error:
                    rejected.append(RejectedFile(path, str(error), failed=True))
                    continue
                images.append(path)
                largest = max(largest, width * height)
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                reason = "empty file" if size == 0 else f"content is not {READ_FORMAT_NAMES} (damaged?)"
                rejected.append(RejectedFile(path, reason, failed=True))
            else:
                rejected.append(RejectedFile(path, "not an image", failed=False))

    visit(folder)
    return ScanResult(images=images, rejected=rejected, largest_pixels=largest)


def no_images_message(folder: Path, scan: ScanResult, *, recursive: bool) -> str:
    """Return the error message for a scan that found no image to edit."""
    from hywu_cli.imageio import READ_FORMAT_NAMES

    broken = [item for item in scan.rejected if item.failed]
    if broken:
        return (
            f"no usable images in {folder}: {len(broken)} image file(s) cannot be edited, "
            f"e.g. {broken[0].path.name}: {broken[0].reason}"
        )
    return f"no {READ_FORMAT_NAMES} images found in {folder} ({len(scan.rejected)} other files)" + (
        "" if recursive else "; pass --recursive to include subfolders"
    )


def slugify(text: str, max_chars: int = SLUG_MAX_CHARS) -> str:
    """Return a lower-case ASCII slug of `text` (letters, digits, single hyphens), or "edit" when none remain."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > max_chars:
        cut = slug[:max_chars]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return slug or "edit"


def safe_name_part(text: str, max_bytes: int = STEM_MAX_BYTES, fallback: str = "image") -> str:
    """Return `text` with forbidden characters replaced by '_' and cut to `max_bytes` of UTF-8."""
    import unicodedata

    cleaned = _UNSAFE_NAME_CHARACTERS.sub("_", unicodedata.normalize("NFC", text)).strip(" .")
    encoded = cleaned.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", "ignore").strip(" .") or fallback


def output_name(relative_image: Path, instruction: str, suffix: str) -> str:
    """Return the output file name of one job, `<stem>__<slug>-<hash>.<ext>` as described in the module docstring."""
    import hashlib

    digest = hashlib.sha256(f"{relative_image.as_posix()}\x00{instruction}".encode()).hexdigest()
    return f"{safe_name_part(relative_image.stem)}__{slugify(instruction)}-{digest[:HASH_HEX_DIGITS]}{suffix}"


def output_suffix(image: Path) -> str:
    """Return the output extension for `image`: its own in lower case when hywu writes it, else the format's."""
    from hywu_cli.imageio import CANONICAL_SUFFIX, SAVE_FORMATS, sniff_format

    suffix = image.suffix.lower()
    if suffix in SAVE_FORMATS:
        return suffix
    try:
        detected = sniff_format(image)
    except OSError:
        detected = None
    return CANONICAL_SUFFIX.get(detected or "PNG", ".png")


def plan_jobs(folder: Path, images: Sequence[Path], instructions: Sequence[str], output_dir: Path) -> list[Job]:
    """Return one job per (image, instruction), image-major, with distinct output paths.

    Images from subfolders keep their relative folder under `output_dir`. Two planned names that differ only in
    case get a numeric suffix, so the names stay distinct on case-insensitive file systems.
    """
    jobs = []
    used: set[str] = set()
    for image in images:
        relative = image.relative_to(folder)
        subfolder = output_dir.joinpath(*(safe_name_part(part, fallback="folder") for part in relative.parent.parts))
        suffix = output_suffix(image)
        for instruction in instructions:
            name = output_name(relative, instruction, suffix)
            output = subfolder / name
            counter = 2
            while str(output).casefold() in used:
                output = subfolder / f"{Path(name).stem}-{counter}{suffix}"
                counter += 1
            used.add(str(output).casefold())
            jobs.append(Job(image=image, instruction=instruction, output=output))
    return jobs


# --- running -------------------------------------------------------------------------------------------------


class ManifestWriter:
    """Appends one JSON line per job to hywu-manifest.jsonl and flushes it, so an interrupted run keeps its record."""

    def __init__(self, file: TextIO, settings: dict[str, Any]) -> None:
        import uuid

        self.file = file
        self.settings = settings
        self.run_id = uuid.uuid4().hex[:12]
        # The instruction reader's reading of each instruction (see `_common.reading_record`).
        self.readings: dict[str, Any] = {}

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` with the run id, a UTC timestamp and the run's settings."""
        from datetime import datetime, timezone

        line = {
            "run": self.run_id,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **record,
            **self.settings,
        }
        self.file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.file.flush()

    def write_job(self, job: Job) -> None:
        """Append the outcome of `job`."""
        self.write(
            {
                "status": job.status,
                "image": str(job.image),
                "instruction": job.instruction,
                "output": str(job.output) if job.status in ("ok", "skipped") else None,
                "error": job.error,
                "reading": self.readings.get(job.instruction),
                "seconds": {key: round(value, 3) for key, value in job.seconds.items()},
            }
        )

    def write_rejected(self, rejected: RejectedFile) -> None:
        """Append a file of FOLDER that was not processed."""
        self.write(
            {
                "status": "failed" if rejected.failed else "skipped",
                "image": str(rejected.path),
                "instruction": None,
                "output": None,
                "error": rejected.reason,
                "seconds": {},
            }
        )


class ProgressDisplay:
    """Job progress on stderr: a Rich bar with ETA on a terminal, else one plain line per job; none with --quiet."""

    def __init__(self, reporter: Reporter, total: int, unchanged_instructions: Collection[str] = ()) -> None:
        self.reporter = reporter
        self.total = total
        # Jobs of these instructions end "ok" with a copy of their photo, and their lines show "unchanged" instead.
        self.unchanged_instructions = unchanged_instructions
        self.done = 0
        self.console = reporter.console(stderr=True)
        self.progress = None
        self.task_id = None

    def __enter__(self) -> ProgressDisplay:
        if not self.reporter.quiet and self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.__enter__()
            self.task_id = self.progress.add_task("editing", total=self.total)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc_info)

    def advance(self, job: Job) -> None:
        """Count `job` as finished and show it."""
        self.done += 1
        if self.reporter.quiet:
            return
        if self.progress is not None:
            self.progress.update(self.task_id, advance=1, description=job.image.name)
            return
        seconds = sum(job.seconds.values())
        detail = f" ({job.error})" if job.error else ""
        status = job.status
        if status == "ok" and job.instruction in self.unchanged_instructions:
            status = "unchanged"
        self.console.print(
            f"[{self.done}/{self.total}] {status} {job.image.name}: {job.instruction!r} -> "
            f"{job.output.name} {seconds:.1f}s{detail}",
            markup=False,
            soft_wrap=True,
        )


def run_jobs(
    pipe: Any,
    jobs: Sequence[Job],
    *,
    batch_size: int,
    strength: float,
    seed: int,
    quality: int,
    skip_existing: bool,
    recorder: ManifestWriter,
    display: ProgressDisplay,
) -> None:
    """Edit the jobs through `pipe.edit_batch`, `batch_size` at a time, saving and recording each result.

    A batch that raises is retried one image at a time with `pipe.edit`, so one failing image does not fail
    the others. Every job ends as "ok", "failed" or "skipped".
    """
    from hywu_cli import imageio
    from hywu_cli.cli.edit import match_input_size

    def finish(job: Job, status: str, error: str | None = None) -> None:
        job.status = status
        job.error = error
        recorder.write_job(job)
        display.advance(job)

    # 1. Skip finished outputs when resuming
    pending = []
    for job in jobs:
        if skip_existing and job.output.exists():
            finish(job, "skipped", "output exists")
        else:
            pending.append(job)

    cache: dict[Path, LoadedImage | str] = {}
    version = _common.hywu_version()
    for start in range(0, len(pending), batch_size):
        chunk = pending[start : start + batch_size]

        # 2. Read the chunk's images; jobs are image-major, so most reads hit the cache
        needed = {job.image for job in chunk}
        for path in [path for path in cache if path not in needed]:
            del cache[path]
        ready: list[tuple[Job, LoadedImage]] = []
        for job in chunk:
            load_started = time.perf_counter()
            if job.image not in cache:
                try:
                    cache[job.image] = imageio.load_image(job.image)
                except HywuError as error:
                    cache[job.image] = str(error)
            job.seconds["load"] = time.perf_counter() - load_started
            loaded = cache[job.image]
            if isinstance(loaded, str):
                finish(job, "failed", loaded)
            else:
                ready.append((job, loaded))
        if not ready:
            continue

        # 3. Edit the chunk in one call, or one by one if that call fails
        edit_started = time.perf_counter()
        results = _edit_chunk(pipe, ready, strength=strength, seed=seed)
        edit_seconds = (time.perf_counter() - edit_started) / len(ready)

        # 4. Save each result with its metadata
        for (job, loaded), result in zip(ready, results, strict=True):
            job.seconds["edit"] = edit_seconds
            if isinstance(result, BaseException):
                finish(job, "failed", f"edit failed: {type(result).__name__}: {result}")
                continue
            save_started = time.perf_counter()
            try:
                imageio.save_image(
                    match_input_size(result, loaded.image.size),
                    job.output,
                    metadata={
                        "instruction": job.instruction,
                        "seed": seed,
                        "strength": strength,
                        "model": pipe.model_name,
                        "hywu_version": version,
                    },
                    quality=quality,
                    source=loaded,
                )
            except HywuError as error:
                job.seconds["save"] = time.perf_counter() - save_started
                finish(job, "failed", str(error))
                continue
            job.seconds["save"] = time.perf_counter() - save_started
            finish(job, "ok")


def _edit_chunk(pipe: Any, ready: Sequence[tuple[Job, LoadedImage]], *, strength: float, seed: int) -> list[Any]:
    """Return one edited image or exception per job."""
    images = [loaded.image for _, loaded in ready]
    instructions = [job.instruction for job, _ in ready]
    try:
        results = list(pipe.edit_batch(images, instructions, strength=strength, seeds=[seed] * len(ready)))
        if len(results) != len(ready):
            raise RuntimeError(f"edit_batch returned {len(results)} images for {len(ready)} inputs")
        return results
    except Exception as error:  # any model failure falls back to single edits
        logger.warning("batch of %d failed (%s: %s); editing one at a time", len(ready), type(error).__name__, error)
        logger.debug("edit_batch traceback", exc_info=True)

    results = []
    for image, instruction in zip(images, instructions, strict=True):
        try:
            results.append(pipe.edit(image, instruction, strength=strength, seed=seed))
        except Exception as error:  # recorded as this job's failure
            logger.debug("edit traceback for %r", instruction, exc_info=True)
            results.append(error)
    return results


# --- summary -------------------------------------------------------------------------------------------------


def print_summary(
    reporter: Reporter,
    jobs: Sequence[Job],
    rejected: Sequence[RejectedFile],
    output_dir: Path,
    manifest: Path,
    unchanged_instructions: Collection[str] = (),
) -> int:
    """Print the summary and the result; return the number of failures (failed jobs and broken files).

    The counts and the table of files not edited go to stderr, or with --quiet only one line per failure. The
    result, where the outputs and the manifest are, goes to stdout (one JSON line with --json). Jobs whose
    instruction is in `unchanged_instructions` saved a copy of their photo and are counted apart from the edits.
    """
    counts = {status: sum(job.status == status for job in jobs) for status in ("ok", "skipped", "failed")}
    counts["unchanged"] = sum(job.status == "ok" and job.instruction in unchanged_instructions for job in jobs)
    broken = [item for item in rejected if item.failed]
    ignored = [item for item in rejected if not item.failed]
    failures = counts["failed"] + len(broken)

    failed_rows = [(str(job.image), job.instruction, job.error or "") for job in jobs if job.status == "failed"]
    failed_rows += [(str(item.path), "", item.reason) for item in broken]
    problems = failed_rows + [(str(item.path), "", item.reason) for item in ignored]

    if reporter.quiet and not reporter.json_output:
        print_failure_lines(failed_rows, manifest)
    elif not reporter.json_output:
        print_summary_tables(reporter, counts, len(broken), len(ignored), problems, manifest)

    reporter.result(
        f"outputs: {output_dir}\nmanifest: {manifest}",
        {
            "status": "failed" if failures else "ok",
            "jobs": len(jobs),
            **counts,
            "broken_files": len(broken),
            "ignored_files": len(ignored),
            "output_dir": str(output_dir),
            "manifest": str(manifest),
            "problems": [
                {"file": file, "instruction": instruction or None, "error": error}
                for file, instruction, error in problems
            ],
        },
    )
    return failures


def print_failure_lines(failed_rows: Sequence[tuple[str, str, str]], manifest: Path) -> None:
    """Print one `failed: FILE ("INSTRUCTION"): REASON` line per failure on stderr, for --quiet."""
    for file, instruction, error in failed_rows[:MAX_PROBLEM_ROWS]:
        job = f" ({json.dumps(instruction, ensure_ascii=False)})" if instruction else ""
        typer.echo(f"failed: {file}{job}: {error}", err=True)
    if len(failed_rows) > MAX_PROBLEM_ROWS:
        typer.echo(f"failed: ... and {len(failed_rows) - MAX_PROBLEM_ROWS} more in {manifest}", err=True)


def print_summary_tables(
    reporter: Reporter,
    counts: dict[str, int],
    broken: int,
    ignored: int,
    problems: Sequence[tuple[str, str, str]],
    manifest: Path,
) -> None:
    """Print the counts table and the table of files not edited on stderr."""
    from rich.table import Table
    from rich.text import Text

    console = reporter.console(stderr=True)
    table = Table(title="hywu batch summary", show_header=True)
    table.add_column("result")
    table.add_column("count", justify="right")
    table.add_row("edited", str(counts["ok"] - counts["unchanged"]))
    if counts["unchanged"]:
        table.add_row("saved unchanged (instruction matched no edit)", str(counts["unchanged"]))
    table.add_row("kept (already existed)", str(counts["skipped"]))
    table.add_row("failed jobs", str(counts["failed"]))
    table.add_row("broken image files", str(broken))
    table.add_row("other files ignored", str(ignored))
    console.print(table)

    if problems:
        details = Table(title="files not edited", show_header=True)
        details.add_column("file", overflow="fold")
        details.add_column("instruction", overflow="fold")
        details.add_column("reason", overflow="fold")
        for file, instruction, error in problems[:MAX_PROBLEM_ROWS]:
            details.add_row(Text(file), Text(instruction), Text(error))
        console.print(details)
        if len(problems) > MAX_PROBLEM_ROWS:
            console.print(f"... and {len(problems) - MAX_PROBLEM_ROWS} more in {manifest}", markup=False)
