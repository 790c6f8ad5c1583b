"""The `hywu` command line: a Typer app with one module per command.

Commands import Pillow, torch and the pipeline inside their bodies, so `hywu --help` and `hywu edit --help`
load only Typer and Rich.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hywu_cli.cli import _common
from hywu_cli.cli.batch import batch
from hywu_cli.cli.download import download_weights
from hywu_cli.cli.edit import edit
from hywu_cli.cli.edits import edits
from hywu_cli.cli.eval import evaluate_model
from hywu_cli.cli.info import info


app = typer.Typer(
    name="hywu",
    cls=_common.HywuGroup,
    help=(
        "Edit photos on your own machine from plain-English instructions.\n\n"
        'Start with: hywu edit photo.jpg "make it warmer" --compare'
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hywu {_common.hywu_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the hywu version and exit."),
    ] = False,
) -> None:
    """Edit photos on your own machine from plain-English instructions."""


app.command("edit")(edit)
app.command("batch")(batch)
app.command("download-weights")(download_weights)
app.command("edits")(edits)
app.command("info")(info)
app.command("eval")(evaluate_model)


def main() -> None:
    """Run the `hywu` console script."""
    app(prog_name="hywu")
