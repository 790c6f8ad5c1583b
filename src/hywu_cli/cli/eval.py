"""`hywu eval`: score a model against the procedural ground truth, next to the static baselines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from hywu_cli import models
from hywu_cli.cli import _common
from hywu_cli.cli._common import JsonOption, LiteralOption, ModelOption, QuietOption, VerboseOption
from hywu_cli.errors import HywuError


SPLIT_HELP = "Phrasings to score: eval (held out), blind or blind2 (held out, written separately) or train."


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
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the --markdown and --json-file files if they exist.")
    ] = False,
    training_scores: Annotated[
        Path | None,
        typer.Option(
            "--training-scores",
            help="A --json-file written by `hywu eval --phrasings train`: adds each method's held-out / training "
            "phrasing PSNR, compared grade by grade.",
        ),
    ] = None,
    literal: LiteralOption = False,
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

        from hywu_cli.comparison import METHODS, compare, markdown, summarize
        from hywu_cli.evaluation import SPLITS, load_photos

        family_list = parse_families(families)
        if split not in SPLITS:
            raise typer.BadParameter(f"{split!r} is not one of {', '.join(SPLITS)}", param_hint="'--phrasings'")
        photo_paths = find_eval_photos(photos, reporter)[:max_photos]
        check_report_files(markdown_file, json_file, photo_paths, overwrite)
        found = find_baselines(baselines, reporter)
        reference = load_training_scores(training_scores, split)

        pipe = _common.open_pipeline(model, _common.Device.cpu, _common.Dtype.float32, reporter)
        pipe.literal = literal
        if reference is not None:
            reads = pipe.reader is not None and not literal
            run = ScoringRun(["base", *found, "hywu"], family_list, len(photo_paths), reads, pipe.model_dir)
            check_training_scores(reference, training_scores, run, reporter)
        if pipe.reader is None or literal:
            reporter.notice("instruction reader off: every method reads the instructions as written")
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
        summary.update(
            photos=len(photo_paths),
            phrasings=split,
            instruction_reader=pipe.reader is not None and not literal,
            seconds=round(time.perf_counter() - started, 1),
        )
        if reference is not None:
            summary["wording_ratio"] = wording_ratios(results, reference["methods"], training_scores)

        payload = {
            "status": "ok",
            "model": str(pipe.model_dir),
            "summary": summary,
            "methods": {name: result.to_dict() for name, result in results.items()},
        }
        table = markdown(results, summary)
        for path, text in ((markdown_file, table + "\n"), (json_file, json.dumps(payload, indent=2) + "\n")):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        if json_output:
            reporter.result("", payload)
            return
        if not quiet:
            print_table(reporter, results)
        reporter.result("\n".join(table.split("\n\n", 1)[1:]), payload)


def load_training_scores(path: Path | None, split: str) -> dict | None:
    """Read the payload of a `hywu eval --phrasings train --json-file` run, before any scoring."""
    import json

    if path is None:
        return None
    if split == "train":
        raise typer.BadParameter(
            "compare held-out phrasings with training phrasings: drop --phrasings train",
            param_hint="'--training-scores'",
        )
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise HywuError(
            f"--training-scores {path} not found; write it with `hywu eval --phrasings train --json-file {path}`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HywuError(f"--training-scores {path} is not a readable JSON file ({error})") from error
    summary = payload.get("summary") if isinstance(payload, dict) else None
    if not isinstance(summary, dict) or not isinstance(payload.get("methods"), dict):
        raise HywuError(f"--training-scores {path} is not a `hywu eval --json-file` report")
    if summary.get("phrasings") != "train":
        raise HywuError(
            f"--training-scores {path} contains scores of {summary.get('phrasings')} phrasings, not training "
            f"phrasings; write one with `hywu eval --phrasings train --json-file {path}`"
        )
    return payload


@dataclass(frozen=True)
class ScoringRun:
    """Settings of this `hywu eval` run that training scores must share to be compared with it."""

    methods: list[str]
    families: list[str] | None
    photos: int
    reads: bool
    model_dir: Path


def count_of(count: object, noun: str) -> str:
    """Return "1 photo" or "2 photos"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def check_training_scores(reference: dict, path: Path, run: ScoringRun, reporter: _common.Reporter) -> None:
    """Reject training scores that cannot be compared with `run`: other methods, families, photos or reader mode."""
    from hywu_cli.phrasings import FAMILY_PHRASINGS

    summary = reference["summary"]
    methods = {name: method for name, method in reference["methods"].items() if isinstance(method, dict)}
    if not set(methods) & set(run.methods):
        raise HywuError(f"--training-scores {path} contains none of the methods scored here ({', '.join(run.methods)})")

    scored = {family for method in methods.values() for family in method.get("families", {})}
    missing = [family for family in run.families or FAMILY_PHRASINGS if family not in scored]
    if missing:
        raise HywuError(
            f"--training-scores {path} has no scores for {', '.join(missing)}; score them with "
            f"`hywu eval --phrasings train --families {','.join(missing)}` or leave them out with --families"
        )

    if summary.get("photos") != run.photos:
        raise HywuError(
            f"--training-scores {path} was scored on {count_of(summary.get('photos'), 'photo')} and this run uses "
            f"{count_of(run.photos, 'photo')}; score both on the same photos"
        )

    if summary.get("instruction_reader") != run.reads:
        mode = "with" if summary.get("instruction_reader") else "without"
        raise HywuError(
            f"--training-scores {path} was scored {mode} the instruction reader; "
            f"{'drop' if run.reads else 'add'} --literal when writing it, or {'add' if run.reads else 'drop'} it here"
        )

    if str(reference.get("model")) != str(run.model_dir):
        reporter.warning(f"--training-scores {path} scored the model in {reference.get('model')}, not {run.model_dir}")


def wording_ratios(results: dict, reference: dict, path: Path) -> dict:
    """Return `wording_ratio` for every method scored both here and in the training-phrasing file."""
    from hywu_cli.evaluation import EvaluationResult, wording_ratio

    ratios = {}
    for name, result in results.items():
        if name not in reference:
            continue
        try:
            ratios[name] = wording_ratio(result, EvaluationResult.from_dict(reference[name]))
        except (KeyError, TypeError, ValueError) as error:
            raise HywuError(
                f"--training-scores {path}: invalid scores for {name} ({type(error).__name__}); rewrite the file "
                "with `hywu eval --phrasings train --json-file`"
            ) from error
    return ratios


def parse_families(value: str | None) -> list[str] | None:
    """Split a comma-separated family list and reject unknown names."""
    if value is None:
        return None
    from hywu_cli.phrasings import FAMILY_PHRASINGS

    by_title = {entry.title.casefold(): name for name, entry in FAMILY_PHRASINGS.items()}
    names, unknown = [], []
    for raw in (part.strip() for part in value.split(",")):
        if not raw:
            continue
        key = raw.casefold().replace(" ", "_").replace("-", "_")
        name = key if key in FAMILY_PHRASINGS else by_title.get(raw.casefold())
        if name is None:
            unknown.append(raw)
        elif name not in names:
            names.append(name)
    if not names and not unknown:
        raise typer.BadParameter("no family given; pass names such as snowy,black_and_white", param_hint="'--families'")
    if unknown:
        raise typer.BadParameter(
            f"unknown family {', '.join(unknown)}; choose from {', '.join(FAMILY_PHRASINGS)}", param_hint="'--families'"
        )
    return names


# SSIM's Gaussian window is 11 pixels wide.
MIN_PHOTO_SIDE = 11


def find_eval_photos(folder: Path, reporter: _common.Reporter) -> list[Path]:
    """Return the held-out photos of a data set built by `hywu_cli.photos`, or every image in a plain folder.

    Files that cannot be read as images, and images under `MIN_PHOTO_SIDE` pixels, are skipped with a warning.
    """
    from PIL import Image

    from hywu_cli.photos import add_user_photos, list_photos

    if folder.is_file():
        raise HywuError(f"--photos {folder} is a file; pass a folder of photos")
    if (folder / "heldout").is_dir():
        paths = list_photos(folder, "heldout")
    elif folder.is_dir():
        paths = add_user_photos(folder)
        unreadable = sum(1 for path in folder.rglob("*") if path.is_file()) - len(paths)
        if unreadable:
            reporter.warning(f"skipped {unreadable} file(s) in {folder} that cannot be read as images")
    else:
        raise HywuError(
            f"photo folder not found: {folder}. Build the held-out set with "
            "`python -m hywu_cli.photos --out data/photos`, or pass --photos FOLDER"
        )
    usable = []
    for path in paths:
        with Image.open(path) as image:
            if min(image.size) < MIN_PHOTO_SIDE:
                reporter.warning(f"skipped {path}: {image.width}x{image.height} is under {MIN_PHOTO_SIDE} pixels a side")
                continue
        usable.append(path)
    if not usable:
        raise HywuError(f"no usable photos in {folder}; pass --photos with a folder of JPEG or PNG photos")
    return usable


def check_report_files(markdown_file: Path | None, json_file: Path | None, photos: list[Path], overwrite: bool) -> None:
    """Reject report paths that are folders, input photos, the same file twice, or existing files without
    --overwrite, before any scoring starts."""
    if markdown_file is not None and json_file is not None and markdown_file.resolve() == json_file.resolve():
        raise typer.BadParameter("--markdown and --json-file name the same file; give two names", param_hint="'--json-file'")
    inputs = {path.resolve() for path in photos}
    for path, option in ((markdown_file, "--markdown"), (json_file, "--json-file")):
        if path is None:
            continue
        if path.is_dir():
            raise typer.BadParameter(f"{str(path)!r} is a folder; give a file name", param_hint=f"'{option}'")
        if path.resolve() in inputs:
            raise typer.BadParameter(f"{str(path)!r} is one of the photos being scored", param_hint=f"'{option}'")
        if any(parent.is_file() for parent in path.parents):
            raise typer.BadParameter(f"{str(path)!r} lies under a file, not a folder", param_hint=f"'{option}'")
        if path.exists() and not overwrite:
            raise HywuError(f"{path} already exists; pass --overwrite to replace it or choose another {option}")


def find_baselines(folder: Path | None, reporter: _common.Reporter) -> dict[str, Path]:
    """Return the trained baselines under `folder`, warning when only one of the two is there."""
    from hywu_cli.comparison import baseline_files

    if folder is None:
        return {}
    if not folder.is_dir():
        raise HywuError(f"--baselines {folder} is not a folder; pass the --work folder of `python -m hywu_cli.training`")
    found = baseline_files(folder)
    if not found:
        raise HywuError(
            f"no baselines in {folder}: expected sft/final or static_lora/final from "
            "`python -m hywu_cli.training --stages sft,static_lora`"
        )
    for name in {"sft", "static_lora"} - set(found):
        reporter.warning(f"no {name} baseline in {folder}; scoring without it")
    return found


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
