"""Pieces shared by the hywu commands: option types, message output, error handling and model loading.

Message conventions: results go to stdout (or one JSON line with --json); notices, warnings, progress and errors
go to stderr. An expected failure (`HywuError`) prints one `error: ...` line and exits with code 1; a usage error
exits with code 2. Nothing here imports torch, numpy or Pillow at module level, so `hywu --help` stays fast.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from hywu_cli import models
from hywu_cli.errors import HywuError, HywuWarning, OutputPathError


# Newer typer releases ship their own copy of click as typer._click, and typer.BadParameter derives from that
# copy's UsageError; older releases use the click package.
try:
    from typer._click.exceptions import ClickException, UsageError
except ImportError:
    from click.exceptions import ClickException, UsageError

if TYPE_CHECKING:
    from rich.console import Console


logger = logging.getLogger("hywu_cli.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MAX_SEED = 2**32 - 1
# Same value as hywu_cli.pipeline.MAX_STRENGTH, repeated here so that option parsing does not import torch.
MAX_STRENGTH = 4.0


class Device(str, enum.Enum):
    """Value of --device."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Dtype(str, enum.Enum):
    """Value of --dtype."""

    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


def _check_strength(value: float) -> float:
    allowed = f"use a number from 0 to {MAX_STRENGTH:g} (1 = as trained)"
    if math.isnan(value):
        raise typer.BadParameter(f"nan is not a number; {allowed}")
    if not 0.0 <= value <= MAX_STRENGTH:
        raise typer.BadParameter(f"{value:g} is out of range; {allowed}")
    return value


StrengthOption = Annotated[
    float,
    typer.Option(
        "--strength",
        callback=_check_strength,
        help=(
            f"Scale applied to the generated LoRA update, 0 to {MAX_STRENGTH:g} "
            "(0 = the base editor alone, 1.0 = as trained, larger = stronger edit)."
        ),
    ),
]
SeedOption = Annotated[
    int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed for the edit's noise (0 to 2**32-1).")
]
DeviceOption = Annotated[
    Device,
    typer.Option("--device", case_sensitive=False, help="Where to run: auto tries cuda, then mps, then cpu."),
]
DtypeOption = Annotated[
    Dtype,
    typer.Option(
        "--dtype",
        case_sensitive=False,
        help="Weight precision; auto = float16 on cuda, float32 elsewhere. Half types fall back to float32 on cpu.",
    ),
]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="HYWU_MODEL",
        help="Model name (looked up in $HYWU_HOME/models, then the checkout's weights/) or model folder path.",
    ),
]
QualityOption = Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG and WebP quality, 1 to 100.")]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict", help="Fail before writing anything when an instruction is outside what the model can edit."
    ),
]
LiteralOption = Annotated[
    bool,
    typer.Option(
        "--literal",
        help="Condition the model on the instruction's own words, not on the edit the instruction reader recognises.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON result line on stdout.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs and tracebacks.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only warnings, errors and the --json line; no progress.")
]


def hywu_version() -> str:
    """Return the installed hywu version."""
    from hywu_cli import __version__

    return __version__


class Reporter:
    """Terminal output of one command run, following the conventions in the module docstring."""

    def __init__(self, *, verbose: bool = False, quiet: bool = False, json_output: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.json_output = json_output

    def notice(self, message: str) -> None:
        """Print a progress or status line on stderr unless --quiet."""
        if not self.quiet:
            typer.echo(message, err=True)

    def warning(self, message: str) -> None:
        """Print `warning: <message>` on stderr."""
        typer.echo(f"warning: {message}", err=True)

    def error(self, message: str) -> None:
        """Print `error: <message>` on stderr, and a JSON error line on stdout with --json."""
        typer.echo(f"error: {message}", err=True)
        if self.json_output:
            typer.echo(json.dumps({"status": "error", "error": message}, ensure_ascii=False))

    def result(self, text: str, data: dict[str, Any]) -> None:
        """Print the command's result: `data` as one JSON line with --json, else `text` unless --quiet."""
        if self.json_output:
            typer.echo(json.dumps(data, ensure_ascii=False, default=str))
        elif not self.quiet:
            typer.echo(text)

    def console(self, *, stderr: bool = False) -> Console:
        """Return a Rich console bound to the current stdout or stderr (tests swap these per run)."""
        from rich.console import Console

        return Console(file=sys.stderr if stderr else sys.stdout, highlight=False)


class _LevelPrefixFormatter(logging.Formatter):
    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.verbose:
            message = f"{record.name}: {message}"
            if record.exc_info:
                message += "\n" + self.formatException(record.exc_info)
        return f"{record.levelname.lower()}: {message}"


@contextlib.contextmanager
def command_session(*, verbose: bool, quiet: bool, json_output: bool = False) -> Iterator[Reporter]:
    """Set up logging and warnings for one command and turn its failures into exit codes.

    `HywuError` prints one error line and exits with 1; with --verbose the traceback comes first. Any other
    exception is treated the same way but names its type, since it points to a bug. Usage errors raised inside
    (`typer.BadParameter`) pass through and exit with 2.
    """
    import traceback

    reporter = Reporter(verbose=verbose, quiet=quiet, json_output=json_output)

    # 1. Route hywu_cli's log records to stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelPrefixFormatter(verbose))
    package_logger = logging.getLogger("hywu_cli")
    saved_level, saved_propagate = package_logger.level, package_logger.propagate
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    package_logger.propagate = False

    with warnings.catch_warnings():
        # 2. Show each distinct HywuWarning once, as one line; other libraries' warnings only with --verbose.
        # Python's once-per-location registry misses repeats, because a batch encodes each instruction twice
        # (scope check, then edit) and image loading changes the warning filters in between, which clears it.
        warnings.simplefilter("default" if verbose else "ignore")
        warnings.simplefilter("default", HywuWarning)
        printed_warnings: set[str] = set()

        def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
            if issubclass(category, HywuWarning):
                text = str(message)
                if text not in printed_warnings:
                    printed_warnings.add(text)
                    reporter.warning(text)
            else:
                logger.debug("%s: %s (%s:%s)", category.__name__, message, filename, lineno)

        warnings.showwarning = show_warning

        # 3. Run the command
        try:
            yield reporter
        except (ClickException, typer.Exit, typer.Abort):
            raise
        except HywuError as error:
            if verbose:
                typer.echo(traceback.format_exc().rstrip(), err=True)
            reporter.error(str(error))
            raise typer.Exit(EXIT_FAILURE) from None
        except KeyboardInterrupt:
            reporter.error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as error:
            if verbose:
                typer.echo(traceback.format_exc().rstrip(), err=True)
                reporter.error(f"unexpected {type(error).__name__}: {error}")
            else:
                reporter.error(f"unexpected {type(error).__name__}: {error} (rerun with --verbose for the traceback)")
            raise typer.Exit(EXIT_FAILURE) from None
        finally:
            package_logger.removeHandler(handler)
            package_logger.setLevel(saved_level)
            package_logger.propagate = saved_propagate


class HywuGroup(TyperGroup):
    """Typer group that prints usage errors as one `error: ...` line instead of a usage panel.

    When the command line contains --json (before any `--`), the error also goes to stdout as the JSON line
    `{"status": "error", "error": ...}`, including errors found while Typer parses the options.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        arguments = list(args) if args is not None else sys.argv[1:]
        options = arguments[: arguments.index("--")] if "--" in arguments else arguments
        reporter = Reporter(json_output="--json" in options)
        try:
            result = super().main(arguments, prog_name, complete_var, standalone_mode=False, **extra)
        except UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":
                # `hywu` alone prints the help text, which the exception carries as its message.
                help_text = error.format_message()
                if help_text.strip():
                    typer.echo(help_text)
                sys.exit(EXIT_USAGE)
            reporter.error(_usage_message(error))
            sys.exit(error.exit_code)
        except ClickException as error:
            reporter.error(error.format_message())
            sys.exit(error.exit_code)
        except typer.Abort:
            reporter.error("aborted")
            sys.exit(EXIT_FAILURE)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def _usage_message(error: UsageError) -> str:
    message = error.format_message().rstrip()
    if error.ctx is not None:
        message += f" (see '{error.ctx.command_path} -h')"
    return message


# --- argument checks -----------------------------------------------------------------------------------------


def check_instruction(instruction: str) -> str:
    """Return the instruction stripped of surrounding whitespace; raise BadParameter when it is empty."""
    text = instruction.strip()
    if not text:
        raise typer.BadParameter(
            'the instruction is empty; describe the edit, e.g. "make it warmer"', param_hint="INSTRUCTION"
        )
    return text


def _is_file(path: Path | str) -> bool:
    # Path.is_file raises OSError for names the system rejects, such as a component longer than 255 bytes; an
    # instruction is often such a "path".
    try:
        return Path(path).is_file()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def check_image_argument(image: Path, instruction: str) -> Path:
    """Return `image` if it is an existing file; otherwise raise BadParameter explaining the likely mistake.

    Detects the two arguments given in the wrong order: an IMAGE that does not exist while INSTRUCTION names a
    file, or an IMAGE that reads like a sentence.
    """
    from hywu_cli.imageio import SAVE_FORMATS

    if _is_file(image):
        if _is_file(instruction) and Path(instruction).suffix.lower() in SAVE_FORMATS:
            raise typer.BadParameter(
                f"INSTRUCTION {instruction!r} is an image file; hywu edit takes one image and one instruction, "
                "and `hywu batch FOLDER PROMPTS` edits many",
                param_hint="INSTRUCTION",
            )
        return image
    if _is_dir(image):
        raise typer.BadParameter(
            f"{str(image)!r} is a folder; pass an image file, or run `hywu batch {image} PROMPTS` to edit a folder",
            param_hint="IMAGE",
        )
    if _is_file(instruction):
        raise typer.BadParameter(
            f"the arguments look swapped: {str(image)!r} is not a file but {instruction!r} is; "
            f'the image comes first: hywu edit {instruction} "{image}"',
            param_hint="IMAGE",
        )
    text = str(image)
    if any(character.isspace() for character in text) and image.suffix.lower() not in SAVE_FORMATS:
        raise typer.BadParameter(
            f"{text!r} is not a file and reads like an instruction; the image comes first: "
            f'hywu edit photo.jpg "{text}"',
            param_hint="IMAGE",
        )
    raise typer.BadParameter(f"image not found: {text}", param_hint="IMAGE")


def check_batch_arguments(folder: Path, prompts: Path) -> None:
    """Raise BadParameter unless FOLDER is a folder and PROMPTS a file, hinting at swapped arguments."""
    if _is_file(folder) and _is_dir(prompts):
        raise typer.BadParameter(
            f"the arguments look swapped: {str(folder)!r} is a file and {str(prompts)!r} a folder; "
            f"the folder comes first: hywu batch {prompts} {folder}",
            param_hint="FOLDER",
        )
    if _is_file(folder):
        raise typer.BadParameter(
            f"{str(folder)!r} is a file; FOLDER must be a folder of photos (to edit one photo, use hywu edit)",
            param_hint="FOLDER",
        )
    if not _is_dir(folder):
        raise typer.BadParameter(f"folder not found: {folder}", param_hint="FOLDER")
    if _is_dir(prompts):
        raise typer.BadParameter(
            f"{str(prompts)!r} is a folder; PROMPTS must be a text file with one instruction per line",
            param_hint="PROMPTS",
        )
    if not _is_file(prompts):
        raise typer.BadParameter(f"prompts file not found: {prompts}", param_hint="PROMPTS")


def check_output_file(path: Path, *, image: Path | None, overwrite: bool, option: str) -> Path:
    """Return `path` after checking it can take a new output file.

    Raises:
        typer.BadParameter: unsupported extension, the input image itself, or an existing folder (exit 2).
        OutputPathError: the file exists and `overwrite` is False (exit 1).
    """
    from hywu_cli.imageio import SAVE_FORMATS, is_same_file

    if path.suffix.lower() not in SAVE_FORMATS:
        allowed = ", ".join(SAVE_FORMATS)
        raise typer.BadParameter(
            f"{str(path)!r} has an unsupported extension {path.suffix or '(none)'!r}; use one of {allowed}",
            param_hint=option,
        )
    if image is not None and (is_same_file(path, image) or path.resolve() == image.resolve()):
        raise typer.BadParameter(
            f"{str(path)!r} is the input image, which hywu never overwrites; choose another file name",
            param_hint=option,
        )
    if path.is_dir():
        raise typer.BadParameter(f"{str(path)!r} is a folder; give a file name", param_hint=option)
    if path.exists() and not overwrite:
        raise OutputPathError(f"{path} already exists; pass --overwrite to replace it or choose another {option}")
    return path


def check_output_dir(folder: Path) -> Path:
    """Check that `folder` exists and is writable, or can be created; create nothing.

    Output folders are created only right before the first file is written, so a command that fails earlier
    leaves no empty folder behind.

    Raises:
        OutputPathError: a file is in the way, or the folder (or the nearest existing folder above it) is not
            writable.
    """
    import tempfile

    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        verb = "use" if existing == folder else "create"
        raise OutputPathError(f"cannot {verb} output folder {folder}: {existing} is a file")
    try:
        # A temporary file is removed on close, so the check leaves nothing behind.
        with tempfile.TemporaryFile(dir=existing, prefix=".hywu-write-check-"):
            pass
    except OSError as error:
        verb = "write in" if existing == folder else "create"
        raise OutputPathError(f"cannot {verb} output folder {folder}: {error.strerror or error}") from None
    return folder


def create_output_dir(folder: Path) -> Path:
    """Create `folder` and its parents if missing.

    Raises:
        OutputPathError: the folder cannot be created.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputPathError(f"cannot use output folder {folder}: a file with that name exists") from None
    except OSError as error:
        raise OutputPathError(f"cannot create output folder {folder}: {error.strerror or error}") from None
    return folder


def apply_default_file_mode(paths: Sequence[Path]) -> None:
    """Give files the mode new files get under the umask (e.g. 0o644), as `imageio.save_image` does.

    Libraries that write through a temporary file, as safetensors does, can leave 0o600 behind.
    """
    from hywu_cli.imageio import default_file_mode

    mode = default_file_mode()
    for path in paths:
        os.chmod(path, mode)


# --- model loading -------------------------------------------------------------------------------------------


def select_device(requested: str) -> str:
    """Return the torch device to use for --device `requested`.

    Raises:
        HywuError: cuda or mps was requested but torch cannot use it.
    """
    import torch

    mps_available = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if mps_available else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise HywuError(
            f"--device cuda: torch {torch.__version__} ({build}) sees no CUDA device; use --device auto or cpu"
        )
    if requested == "mps" and not mps_available:
        raise HywuError("--device mps: this torch build or machine has no MPS support; use --device auto or cpu")
    return requested


def select_dtype(requested: str, device: str) -> tuple[str, str | None]:
    """Return the dtype to load with on `device`, and a notice when `requested` had to be replaced."""
    if requested == "auto":
        # Half precision on MPS is untested here, so auto keeps float32 there.
        return ("float16" if device == "cuda" else "float32"), None
    if device == "cpu" and requested in ("float16", "bfloat16"):
        return "float32", f"--dtype {requested} is slow or unsupported on cpu; using float32"
    if device == "cuda" and requested == "bfloat16":
        import torch

        if not torch.cuda.is_bf16_supported():
            return "float16", "--dtype bfloat16 is not supported by this GPU; using float16"
    return requested, None


def load_pipeline(model: str, device: str, dtype: str) -> Any:
    """Import the editing pipeline and load `model`; a module-level function so tests can replace it."""
    from hywu_cli.pipeline import load_pipeline as load

    return load(model=model, device=device, dtype=dtype)


def check_model_files(model: str) -> Path:
    """Return the folder of `model` after the cheap checks (manifest, sizes, LFS pointers, safetensors headers).

    Runs before torch is imported so that missing or broken files fail within a second.
    """
    folder = models.resolve_model_dir(model)
    models.check_model_dir(folder, check_hashes=False, name=None if models.looks_like_path(model) else model)
    return folder


def announce_kernel_compile(pixels: int, reporter: Reporter) -> None:
    """Say that the next edit waits for the renderer to compile, when a photo of `pixels` pixels makes it do so."""
    from hywu_cli.rendering import COMPILED_MIN_PIXELS, compiled_kernel_pending

    if compiled_kernel_pending(pixels):
        reporter.notice(
            f"compiling the renderer for photos of {COMPILED_MIN_PIXELS // 1_000_000} megapixels and more; only the "
            "first such edit after installing waits for it (about 7 s on 2 cores)"
        )


def open_pipeline(model: str, device: Device, dtype: Dtype, reporter: Reporter) -> Any:
    """Check the model files, pick device and dtype, announce the choice, and load the pipeline."""
    model_dir = check_model_files(model)
    device_name = select_device(device.value)
    dtype_name, dtype_notice = select_dtype(dtype.value, device_name)
    if dtype_notice:
        reporter.notice(dtype_notice)
    how = " (chosen by --device auto)" if device is Device.auto else ""
    reporter.notice(f"loading {model_dir} on {device_name}{how} as {dtype_name}")
    return load_pipeline(str(model_dir), device_name, dtype_name)


class Rejections:
    """Instructions that `--strict` rejects, gathered so that one error names them all.

    One rejected instruction gets its full message as the error. Several are listed each with a short reason, and
    the advice comes once.
    """

    # The error lists at most this many instructions, then counts the rest.
    LISTED = 10

    def __init__(self, model_name: str, order: Sequence[str] = ()) -> None:
        self.model_name = model_name
        self.order = {text: position for position, text in enumerate(order)}  # instructions in prompt-file order
        self.reasons: list[tuple[str, str]] = []  # (instruction, short reason)
        self.messages: list[str] = []
        self.literal_helps = False

    def add(self, instructions: Sequence[str], reason: str, message: str, *, literal_helps: bool = False) -> None:
        """Reject `instructions` for `reason`. `message` is the full error, used when only they are rejected."""
        self.reasons += [(text, reason) for text in instructions]
        self.messages.append(message)
        self.literal_helps = self.literal_helps or literal_helps

    def raise_if_any(self) -> None:
        """Raise one error for every rejected instruction, if there is any.

        Raises:
            HywuError: at least one instruction was rejected.
        """
        if not self.reasons:
            return
        if len(self.messages) == 1 and len(self.reasons) == 1:
            raise HywuError(self.messages[0])
        reasons = sorted(self.reasons, key=lambda item: self.order.get(item[0], len(self.order)))
        listed = "; ".join(f"{text!r} ({reason})" for text, reason in reasons[: self.LISTED])
        if len(reasons) > self.LISTED:
            listed += f"; and {len(reasons) - self.LISTED} more"
        literal = ", pass --literal to apply the unread ones as written" if self.literal_helps else ""
        raise HywuError(
            f"--strict rejected {len(reasons)} instructions: {listed}. Rephrase them as edits that `hywu edits` "
            f"lists{literal}, or run without --strict"
        )


def read_instructions(
    pipe: Any,
    instructions: Sequence[str],
    *,
    literal: bool,
    strict: bool,
    reporter: Reporter,
    scope: dict[str, Any] | None = None,
    rejections: Rejections | None = None,
) -> dict[str, Any]:
    """Set the pipeline's literal mode and report, for each instruction, which edit the reader recognised.

    An in-scope instruction (per `scope`) that the reader cannot match to one edit gets one warning, and with
    `strict` it is rejected. Either way its photo is left unchanged. Out-of-scope instructions were already reported
    by `check_scope`, which adds them to `rejections` with `strict`, so the error names every rejected
    instruction at once.

    Raises:
        HywuError: `strict` is set and at least one instruction is rejected, here or in `rejections`.
    """
    from hywu_cli.phrasings import FAMILY_PHRASINGS

    rejections = Rejections(pipe.model_name) if rejections is None else rejections
    pipe.literal = literal
    readings = dict(zip(instructions, pipe.read_instructions(list(instructions)), strict=True))
    reads = getattr(pipe, "reader", None) is not None and not literal
    unmatched, no_edit = [], []
    for instruction, reading in readings.items():
        in_scope = scope is None or scope[instruction].in_scope
        if reading.family is not None:
            edits = ", then ".join(
                f"{FAMILY_PHRASINGS[edit.family].title}, {edit.grade} (confidence {edit.confidence:.2f})"
                for edit in reading.edits()
            )
            reporter.notice(f"read {instruction!r} as: {edits}")
            if reading.unsplit_parts:
                parts = ", ".join(FAMILY_PHRASINGS[part.family].title for part in reading.unsplit_parts)
                reporter.warning(
                    f"only {FAMILY_PHRASINGS[reading.family].title} is applied: the parts of {instruction!r} read as "
                    f"{parts}, but the whole reads as one edit; to apply each part in turn, join the parts with ';' "
                    "or 'then'"
                )
        elif reading.no_edit and not in_scope:
            # `check_scope` warned that it looks out of scope (or, with --strict, rejected it). That warning cannot
            # know whether the reader matches it, so this one states what happens to the photo.
            if not strict:
                reporter.warning(f"{instruction!r} matches none of the edits, so its photo is left unchanged")
        elif reading.matches_none:
            no_edit.append(instruction)
        elif reads:
            unmatched.append(instruction)
    report_no_edit(pipe, no_edit, strict, reporter, rejections)

    from hywu_cli.instruction_reader import request_parts

    compound = [text for text in unmatched if len(request_parts(text)) > 1]
    single = [text for text in unmatched if text not in compound]
    if single:
        pronoun = "it" if len(single) == 1 else "each"
        report_unmatched(
            single,
            f"could not match {', '.join(repr(text) for text in single)} to one of {pipe.model_name}'s edits",
            f"rephrase {pronoun} as one edit (`hywu edits` lists them)",
            "could not be matched to one edit",
            strict,
            reporter,
            rejections,
        )
    for text in compound:
        reason = readings[text].unread_reason or "its parts do not all read clearly as edits"
        report_unmatched(
            [text],
            f"could not read {text!r} as edits applied in turn: {reason}",
            "ask for each edit clearly, leave out edits that undo each other, and join the rest with ';' or 'then' "
            "(`hywu edits` lists the edits)",
            reason,
            strict,
            reporter,
            rejections,
        )
    rejections.raise_if_any()
    return readings


def report_unmatched(
    instructions: list[str],
    message: str,
    advice: str,
    reason: str,
    strict: bool,
    reporter: Reporter,
    rejections: Rejections,
) -> None:
    """Warn that the photos of unmatched instructions are left unchanged, or with `strict` reject them."""
    if strict:
        full = f"{message}; {advice}, pass --literal, or run without --strict"
        rejections.add(instructions, reason, full, literal_helps=True)
        return
    photos = "its photo is" if len(instructions) == 1 else "their photos are"
    reporter.warning(
        f"{message}, so {photos} left unchanged; {advice}, or pass --literal to apply the model to the words "
        "as written"
    )


def report_no_edit(
    pipe: Any, instructions: list[str], strict: bool, reporter: Reporter, rejections: Rejections
) -> None:
    """Warn once about in-scope instructions that the reader is sure match no edit, or with `strict` reject them."""
    if not instructions:
        return
    message = (
        f"{', '.join(repr(text) for text in instructions)} matches none of {pipe.model_name}'s edits, which add "
        "effects and cannot remove one"
    )
    if strict:
        full = f"{message}; rephrase it as one of the edits `hywu edits` lists, or run without --strict"
        rejections.add(instructions, f"matches none of {pipe.model_name}'s edits", full, literal_helps=True)
        return
    reporter.warning(
        f"{message}, so {'its photo is' if len(instructions) == 1 else 'their photos are'} left unchanged; --literal "
        "applies the model to the words as written"
    )


def reading_record(reading: Any, literal: bool) -> dict[str, Any] | None:
    """Return the JSON form of an instruction reading, or None with --literal."""
    if literal:
        return None
    return {
        "family": reading.family,
        "grade": reading.grade,
        "confidence": reading.confidence,
        "conditioned_on": reading.text,
        "leaves_photo_unchanged": reading.no_edit,
        "then": [
            {"family": edit.family, "grade": edit.grade, "confidence": edit.confidence, "conditioned_on": edit.text}
            for edit in reading.followed_by
        ],
        # Edits that the parts of a list read as, when the whole read as one of them and only that one is applied.
        "parts_read_alone": [part.family for part in reading.unsplit_parts],
    }


def check_scope(
    pipe: Any,
    instructions: Sequence[str],
    *,
    strict: bool,
    reporter: Reporter,
    rejections: Rejections | None = None,
) -> dict[str, Any]:
    """Return each instruction's scope report and warn about out-of-scope ones.

    With `strict`, out-of-scope instructions are rejected: at once, or, given `rejections`, by the caller's
    `read_instructions`, in one error with every other rejected instruction.

    Raises:
        HywuError: `strict` is set, at least one instruction is outside the model's edits and `rejections` is None.
    """
    reports = {instruction: pipe.check_scope(instruction) for instruction in instructions}
    messages = []
    for instruction, report in reports.items():
        if report.in_scope:
            continue
        closest = ", ".join(f"{title} ({similarity:.2f})" for title, similarity in report.closest[:3])
        message = (
            f"{instruction!r} looks outside what {pipe.model_name} can edit (score {report.score:.2f}); "
            f"closest supported edits: {closest or 'none'}"
        )
        messages.append(message)
        if strict and rejections is not None:
            reason = f"outside {pipe.model_name}'s edits; closest: {closest or 'none'}"
            rejections.add([instruction], reason, f"{message}; rephrase or run without --strict")
    if strict and messages:
        if rejections is None:
            raise HywuError(f"{' | '.join(messages)}; rephrase or run without --strict")
        return reports
    for message in messages:
        reporter.warning(message)
    return reports
