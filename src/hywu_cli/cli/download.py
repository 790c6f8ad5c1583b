"""`hywu download-weights [MODEL]`: fetch a model folder, or verify the local copy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hywu_cli import models
from hywu_cli.cli import _common
from hywu_cli.cli._common import JsonOption, QuietOption, Reporter, VerboseOption


if TYPE_CHECKING:
    from rich.progress import Progress


def download_weights(
    model: Annotated[
        str, typer.Argument(help="Model name; also the name of the destination folder.")
    ] = models.DEFAULT_MODEL,
    repo_id: Annotated[
        str | None,
        typer.Option("--repo-id", help="Hugging Face Hub repository holding the model folder.", show_default=False),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", help="Hub branch, tag or commit (with --repo-id). Default: main.", show_default=False
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="HTTP(S) base URL that serves manifest.json and the files it lists.", show_default=False
        ),
    ] = None,
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            metavar="DIR",
            help=(
                "Destination folder: new, empty, or holding a model to replace (other files in it are kept). "
                "Default: $HYWU_HOME/models/MODEL."
            ),
            show_default=False,
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Extra attempts per file after a dropped connection (HTTP).")
    ] = 3,
    timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="HTTP socket timeout in seconds.")] = 30.0,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
) -> None:
    """Download a model and check every file's SHA-256; without --url or --repo-id, verify the local copy.

    Interrupted HTTP downloads resume where they stopped when the command runs again. HF_HUB_OFFLINE=1 blocks
    every download.

    Example: hywu download-weights hywu-lite --repo-id ORG/hywu-lite
    """
    with _common.command_session(verbose=verbose, quiet=quiet, json_output=json_output) as reporter:
        import urllib.parse

        from hywu_cli import hub

        # 1. Check the arguments
        if not models.is_model_name(model):
            raise typer.BadParameter(
                f"{model!r} is not a model name (letters, digits, '.', '_', '-'); use --dest for a folder",
                param_hint="MODEL",
            )
        if url and repo_id:
            raise typer.BadParameter("pass either --url or --repo-id, not both", param_hint="--url")
        if revision and not repo_id:
            raise typer.BadParameter("--revision needs --repo-id", param_hint="--revision")
        if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise typer.BadParameter(f"{url!r} is not an http:// or https:// URL", param_hint="--url")

        # 2. Download, or verify what is already here. The offline and destination checks run before the
        #    "downloading" notice, so a refused download prints only its error.
        if url or repo_id:
            destination = hub.check_download_target(model, dest)
            reporter.notice(f"downloading {model} from {url or repo_id} into {destination}")
        if repo_id and quiet:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        with TransferDisplay(reporter) as progress:
            result = hub.download_model(
                model,
                dest=dest,
                url=url,
                repo_id=repo_id,
                revision=revision,
                retries=retries,
                timeout=timeout,
                progress=progress,
            )

        # 3. Report
        size = _format_bytes(result.total_bytes)
        if result.source == "local":
            text = f"{model} verified: {result.file_count} files, {size}, at {result.path}"
        else:
            text = (
                f"{model} ready at {result.path} ({result.file_count} files, {size}; "
                f"{_format_bytes(result.fetched_bytes)} transferred)"
            )
        reporter.result(
            text,
            {
                "status": "ok",
                "model": model,
                "path": str(result.path),
                "source": result.source,
                "files": result.file_count,
                "bytes": result.total_bytes,
                "fetched_bytes": result.fetched_bytes,
            },
        )


class TransferDisplay:
    """`hub.TransferProgress` for the terminal: a Rich bar on stderr, or one line per file when not a terminal."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.console = reporter.console(stderr=True)
        self.progress: Progress | None = None
        self.task_id = None
        self.current_file = ""

    def __enter__(self) -> TransferDisplay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc_info)

    def start(self, total_bytes: int, file_count: int) -> None:
        """Open the bar for `total_bytes` across `file_count` files."""
        if self.reporter.quiet or file_count == 0:
            return
        if not self.console.is_terminal:
            self.reporter.notice(f"fetching {file_count} file(s), {_format_bytes(total_bytes)}")
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.__enter__()
        self.task_id = self.progress.add_task("downloading", total=total_bytes)

    def update(self, completed_bytes: int, current_file: str) -> None:
        """Move the bar to `completed_bytes`; name `current_file` when it changes."""
        if self.reporter.quiet:
            return
        if self.progress is not None:
            self.progress.update(self.task_id, completed=completed_bytes, description=current_file)
        elif current_file != self.current_file:
            self.reporter.notice(f"fetching {current_file}")
        self.current_file = current_file


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
