"""`hywu eval`: score a model against the procedural ground truth, next to the static baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hywu_cli import models
from hywu_cli.cli import _common
from hywu_cli.cli._common import JsonOption, ModelOption, QuietOption, VerboseOption
from hywu_cli.errors import HywuError


SPLIT_HELP = "Phrasings to score: eval (held out), blind (held out, written separately) or train."


def evaluate_model(
    model: ModelOption = models.DEFAULT_MODEL,
    photos: Annotated[
        Path,
        typer.Option(
            "--photos",
            help="Photos to edit: a folder built by `python -m hywu_cli.photos` (its heldout/ split is used) or any "
            "folder of images.",
        ),
    ] = Path("data/photos"),
    baselines: Annotated[
        Path | None,
        typer.Option(
            "--baselines",
            help="The --work folder of `python -m hywu_cli.training`; its sft/ and static_lora/ results are scored too.",
        ),
    ] = None,
    split: Annotated[str, typer.Option("--phrasings", help=SPLIT_HELP)] = "eval",
    families: Annotated[
        str | None, typer.Option("--families", help="Comma-separated families to score (default: all).")
    ] = None,
    max_photos: Annotated[int | None, typer.Option("--max-photos", min=1, help="Use only the first N photos.")] = None,
    max_phrasings: Annotated[
        int | None, typer.Option("--max-phrasings", min=1, help="Use only the first N phrasings per family.")
    ] = None,
    markdown_file: Annotated[
        Path | None, typer.Option("--markdown", help="Also write the table as Markdown to this file.")
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json-file", help="Also write all numbers to this JSON file.")] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Score a model on held-out photos x phrasings x families: PSNR, SSIM and the overlay metric per family.

    Scores the bare base editor and the generated updates (HY-WU), plus the static SFT and static LoRA baselines
    when --baselines points at a training folder. Then checks HY-WU's claims: it beats the static baselines,
    keeps the base's pretraining families and beats the base on families the base never saw.
    """
    with _common.command_session(verbose=verbose, quiet=quiet, json_output=json_output) as reporter:
        import json
        import time

        from hywu_cli.comparison import METHODS, baseline_files, compare, markdown, summarize
        from hywu_cli.evaluation import SPLITS, load_photos

        family_list = parse_families(families)
        if split not in SPLITS:
            raise typer.BadParameter(f"{split!r} is not one of {', '.join(SPLITS)}", param_hint="'--phrasings'")
        photo_paths = find_eval_photos(photos)[:max_photos]
        found = baseline_files(baselines)
        if baselines is not None and not found:
            raise HywuError(
                f"no baselines in {baselines}: expected sft/final or static_lora/final from "
                "`python -m hywu_cli.training --stages sft,static_lora`"
            )

        pipe = _common.open_pipeline(model, _common.Device.cpu, _common.Dtype.float32, reporter)
        reporter.notice(f"scoring {', '.join(['base', *found, 'hywu'])} on {len(photo_paths)} photos ({split} phrasings)")
        started = time.perf_counter()
        results = compare(
            pipe,
            load_photos(photo_paths),
            found,
            split=split,
            families=family_list,
            max_phrasings=max_phrasings,
            progress=lambda name: reporter.notice(f"  {name}: {METHODS[name]}"),
        )
        summary = summarize(results)
        summary.update(photos=len(photo_paths), phrasings=split, seconds=round(time.perf_counter() - started, 1))

        payload = {"summary": summary, "methods": {name: result.to_dict() for name, result in results.items()}}
        table = markdown(results, summary)
        if markdown_file is not None:
            markdown_file.write_text(table + "\n")
        if json_file is not None:
            json_file.write_text(json.dumps(payload, indent=2) + "\n")
        if json_output:
            reporter.result("", payload)
            return
        print_table(reporter, results)
        reporter.result("\n".join(table.split("\n\n", 1)[1:]), payload)


def parse_families(value: str | None) -> list[str] | None:
    """Split a comma-separated family list and reject unknown names."""
    if value is None:
        return None
    from hywu_cli.phrasings import FAMILY_PHRASINGS

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in FAMILY_PHRASINGS]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown family {', '.join(unknown) or value!r}; `hywu edits --json` lists them", param_hint="'--families'"
        )
    return names


def find_eval_photos(folder: Path) -> list[Path]:
    """Return the held-out photos of a data set built by `hywu_cli.photos`, or every image in a plain folder."""
    from hywu_cli.photos import add_user_photos, list_photos

    if (folder / "heldout").is_dir():
        paths = list_photos(folder, "heldout")
    elif folder.is_dir():
        paths = add_user_photos(folder)
    else:
        raise HywuError(
            f"photo folder not found: {folder}. Build the held-out set with "
            "`python -m hywu_cli.photos --out data/photos`, or pass --photos FOLDER"
        )
    if not paths:
        raise HywuError(f"no photos in {folder}; pass --photos with a folder of JPEG or PNG photos")
    return paths


def print_table(reporter: _common.Reporter, results: dict) -> None:
    """Print PSNR per family and method as a Rich table, the best method per row in bold."""
    from rich.table import Table

    names = list(results)
    table = Table(title="PSNR (dB) against the ground truth; SSIM in brackets")
    table.add_column("family")
    for name in names:
        table.add_column(name, justify="right")
    for family in results["hywu"].families:
        scores = {name: results[name].families[family] for name in names}
        best = max(names, key=lambda name: scores[name].psnr)
        cells = [
            f"{'[bold]' if name == best else ''}{scores[name].psnr:.2f} ({scores[name].ssim:.3f})"
            f"{'[/bold]' if name == best else ''}"
            for name in names
        ]
        table.add_row(family, *cells)
    table.add_row("mean", *(f"{results[name].mean_psnr:.2f}" for name in names), style="bold")
    reporter.console().print(table)
