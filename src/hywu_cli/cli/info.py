"""`hywu info`: versions, devices, memory and the model folders hywu can find."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from hywu_cli import models
from hywu_cli.cli import _common
from hywu_cli.cli._common import JsonOption, ModelOption, VerboseOption


def info(
    model: ModelOption = models.DEFAULT_MODEL,
    files: Annotated[bool, typer.Option("--files/--no-files", help="List each model file with its size.")] = True,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Show the hywu, Python and torch versions, devices, memory, and the model's files and licences."""
    with _common.command_session(verbose=verbose, quiet=False, json_output=json_output) as reporter:
        import platform

        report = {
            "hywu": _common.hywu_version(),
            "python": f"{platform.python_version()} ({sys.executable})",
            "platform": platform.platform(),
            "torch": torch_report(),
            "memory": memory_report(),
            "hywu_home": str(models.hywu_home()),
            "model_search_path": model_search_path(model),
            "model": model_report(model),
        }
        if json_output:
            reporter.result("", report)
            return
        print_report(reporter, report, show_files=files)


def torch_report() -> dict[str, Any]:
    """Return torch's version and which accelerators it can use, with each GPU's name and memory."""
    try:
        import torch
    except Exception as error:  # a broken torch install is what `info` should reveal
        return {"error": f"torch cannot be imported: {type(error).__name__}: {error}"}

    report: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "gpus": [],
    }
    if report["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            report["gpus"].append(
                {"index": index, "name": torch.cuda.get_device_name(index), "total_bytes": total, "free_bytes": free}
            )
    return report


def memory_report() -> dict[str, int | None]:
    """Return total and available system memory in bytes; None where the system does not report it."""
    total = available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            fields = dict(line.split(":", 1) for line in file if ":" in line)
        total = int(fields["MemTotal"].split()[0]) * 1024
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total = page * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, OSError, ValueError):
            pass
    return {"total_bytes": total, "available_bytes": available}


def model_search_path(model: str) -> list[str]:
    """Return the folders searched for --model `model`; empty when `model` is a folder path, which is not looked up."""
    if models.looks_like_path(model):
        return []
    return [str(folder) for folder in models.candidate_dirs(model)]


def model_report(model: str) -> dict[str, Any]:
    """Return where `model` resolves, its manifest's name, version, licences and files, or why it cannot."""
    from hywu_cli.errors import ModelFilesError

    try:
        folder = models.resolve_model_dir(model)
    except ModelFilesError as error:
        return {"requested": model, "error": str(error)}
    try:
        manifest = models.load_manifest(folder)
    except ModelFilesError as error:
        hint = models.download_hint(folder=folder) if models.looks_like_path(model) else models.download_hint(model)
        return {"requested": model, "path": str(folder), "error": f"{error}; {hint}"}
    files = []
    for entry in manifest["files"]:
        path = folder / entry["path"]
        actual = path.stat().st_size if path.is_file() else None
        files.append({"path": entry["path"], "size": entry["size"], "present_size": actual})
    return {
        "requested": model,
        "path": str(folder),
        "name": manifest["name"],
        "version": manifest["version"],
        "components": manifest.get("components", {}),
        "licences": manifest.get("licences", {}),
        "files": files,
        "total_bytes": sum(entry["size"] for entry in manifest["files"]),
    }


def print_report(reporter: _common.Reporter, report: dict[str, Any], *, show_files: bool) -> None:
    """Print the `info` report as Rich tables."""
    from rich.table import Table
    from rich.text import Text

    console = reporter.console()
    overview = Table(show_header=False, box=None)
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("hywu", report["hywu"])
    overview.add_row("python", Text(report["python"]))
    overview.add_row("platform", report["platform"])

    torch_info = report["torch"]
    if "error" in torch_info:
        overview.add_row("torch", Text(torch_info["error"]))
    else:
        overview.add_row("torch", f"{torch_info['version']} (CUDA build: {torch_info['cuda_build'] or 'none'})")
        overview.add_row("cuda", "available" if torch_info["cuda_available"] else "not available")
        for gpu in torch_info["gpus"]:
            overview.add_row(
                f"  gpu {gpu['index']}",
                f"{gpu['name']}, {_gib(gpu['free_bytes'])} free of {_gib(gpu['total_bytes'])}",
            )
        overview.add_row("mps", "available" if torch_info["mps_available"] else "not available")
    memory = report["memory"]
    overview.add_row("memory", f"{_gib(memory['available_bytes'])} available of {_gib(memory['total_bytes'])}")
    overview.add_row("HYWU_HOME", Text(report["hywu_home"]))
    if report["model_search_path"]:
        overview.add_row("model search path", Text("\n".join(report["model_search_path"])))
    console.print(overview)

    model = report["model"]
    console.print()
    if "error" in model:
        console.print(Text(f"model {model['requested']}: {model['error']}"))
        return
    console.print(Text(f"model {model['name']} {model['version']} at {model['path']} ({_gib(model['total_bytes'])})"))
    if show_files:
        files = Table(title="files")
        files.add_column("path", overflow="fold")
        files.add_column("size", justify="right")
        files.add_column("state")
        for entry in model["files"]:
            state = (
                "ok"
                if entry["present_size"] == entry["size"]
                else ("missing" if entry["present_size"] is None else f"size {entry['present_size']}")
            )
            files.add_row(Text(entry["path"]), _mib(entry["size"]), state)
        console.print(files)
    licences = Table(title="licences", show_lines=True)
    licences.add_column("component")
    licences.add_column("licence", overflow="fold")
    for component, text in model["licences"].items():
        licences.add_row(Text(component), Text(str(text)))
    console.print(licences)


def _gib(count: int | None) -> str:
    return "unknown" if count is None else f"{count / 2**30:.1f} GiB"


def _mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count} B"
