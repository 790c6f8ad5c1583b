"""Measure hywu's start-up, edit compute, generator latency, batch throughput and peak memory on the CPU.

    python benchmarks/run.py [--runs 5] [--sizes 1,12,24] [--model weights/hywu-lite] [--out benchmarks/RESULTS.md]
    python benchmarks/run.py --quick --out /tmp/bench-quick.md    # tiny photos and 1 run, to check the script

Run it from the repository root with the virtual environment active, on an otherwise idle machine, because every
number is a wall time. The full run edits 12- and 24-megapixel photos many times and takes a long while on a small
CPU. It writes a Markdown page to --out and the same numbers as JSON to --json (by default next to --out, with
the lowercased stem: RESULTS.md -> results.json).

Test photos are 4:3 JPEGs (quality 92) resized from examples/misty-lake.jpg into a temporary folder, which is
deleted at the end. Edit compute also runs on mosaic photos of the same sizes, tiled from two example photos at
their own resolution, which keep the examples' own detail. The sizes from --sizes play these parts:

* start-up of `hywu edit`: the smallest size (1 MP by default);
* edit compute: every size;
* batch throughput: every size except the largest (1 and 12 MP by default);
* peak memory of `hywu edit`: every size except the smallest (12 and 24 MP by default).

With one size, that size plays every part.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import PIL
import torch
from PIL import Image


REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PHOTO = REPO_ROOT / "examples" / "misty-lake.jpg"
# Tiled at their own resolution into the mosaic photos, which keep the examples' own detail.
MOSAIC_SOURCES = tuple(REPO_ROOT / "examples" / name for name in ("dune-grass.jpg", "misty-lake.jpg"))
PHOTO_KINDS = ("upscaled", "mosaic")
GENERATOR_SCRIPT = REPO_ROOT / "benchmarks" / "generator_latency.py"
DEFAULT_MODEL = Path("weights/hywu-lite")
DEFAULT_OUT = Path("benchmarks/RESULTS.md")

DEFAULT_SIZES = (1.0, 12.0, 24.0)
QUICK_SIZES = (0.02, 0.05, 0.1)
TEST_PHOTO_QUALITY = 92
ENCODE_QUALITY = 95
STARTUP_INSTRUCTION = "make it warmer"
# Instructions that exercise different operators: a colour shift, weather, blur, stylisation and noise.
INSTRUCTIONS = (
    "make it warmer",
    "make it snowy",
    "blur the photo",
    "turn it into a cartoon",
    "add film grain",
)
BATCH_SIZES = (1, 4, 8)
GENERATOR_REPEATS = 20
QUICK_GENERATOR_REPEATS = 2

TARGET_RATIO_MP = 12.0
TARGET_RATIO = 1.0
STRETCH_RATIO = 0.5
TARGET_THROUGHPUT_MP = 12.0
TARGET_IMAGES_PER_MINUTE = 60.0
TARGET_MEMORY_MP = 24.0
TARGET_MEMORY_BYTES = 2_000_000_000  # 2 GB in decimal units, the stricter reading of "2 GB"

GNU_TIME = Path("/usr/bin/time")
GNU_TIME_RSS_PATTERN = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")
GENERATOR_LINE_PATTERN = re.compile(r"batch (\d+): ([\d.]+) ms per call, ([\d.]+) ms per instance")
# Runs a command and writes the largest resident set size of its process tree (ru_maxrss) to the file in argv[1].
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "returncode = subprocess.call(sys.argv[2:])\n"
    "with open(sys.argv[1], 'w') as file:\n"
    "    file.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(returncode)\n"
)


# -- arguments ------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> tuple[float, ...]:
    """Parse a comma-separated list of positive megapixel counts, e.g. "1,12,24"."""
    try:
        sizes = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        message = f"invalid value {text!r}; expected megapixel counts such as 1,12,24"
        raise argparse.ArgumentTypeError(message) from error
    if not sizes or any(not math.isfinite(size) or size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; every size must be a positive number")
    return tuple(sorted(set(sizes)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])

    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="Timed runs per measurement; the median is reported, and the largest value for memory.",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=DEFAULT_SIZES,
        help="Comma-separated photo sizes in megapixels (default: 1,12,24).",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="Model folder to benchmark.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown results file to write.")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="JSON results file to write (default: next to --out, stem lowercased, e.g. results.json).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"Check the script: sizes {','.join(f'{size:g}' for size in QUICK_SIZES)} MP and 1 run, "
        "replacing --sizes and --runs.",
    )

    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"invalid --runs {args.runs}; expected 1 or more")
    if args.quick:
        args.runs = 1
        args.sizes = QUICK_SIZES
    if args.json is None:
        args.json = args.out.with_name(f"{args.out.stem.lower()}.json")
    return args


# -- machine --------------------------------------------------------------------------------------------------


def read_cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    for line in lines:
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def read_total_memory_bytes() -> int | None:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def read_git_revision() -> str:
    """Return the checked-out commit, with "+ uncommitted changes" when the work tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} + uncommitted changes" if status else commit


def describe_machine() -> dict:
    return {
        "cpu_model": read_cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "memory_bytes": read_total_memory_bytes(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "git_revision": read_git_revision(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- test photos and commands ---------------------------------------------------------------------------------


def compute_photo_size(megapixels: float) -> tuple[int, int]:
    """Return a 4:3 (width, height) with about `megapixels` million pixels, e.g. 12 -> 4000 x 3000."""
    unit = max(1, round(math.sqrt(megapixels * 1e6 / 12)))
    return 4 * unit, 3 * unit


def make_test_photo(megapixels: float, folder: Path) -> Path:
    """Write SOURCE_PHOTO resized to a 4:3 JPEG of about `megapixels` megapixels into `folder`."""
    path = folder / f"photo-{megapixels:g}mp.jpg"
    with Image.open(SOURCE_PHOTO) as source:
        resized = source.convert("RGB").resize(compute_photo_size(megapixels), Image.Resampling.LANCZOS)
    resized.save(path, "JPEG", quality=TEST_PHOTO_QUALITY)
    return path


def make_mosaic_photo(megapixels: float, folder: Path) -> Path:
    """Write a 4:3 JPEG of about `megapixels` megapixels tiled from MOSAIC_SOURCES at their own resolution.

    An upscaled photo is smooth, so Pillow decodes and encodes it faster than a camera photo of the same size. The
    mosaic keeps the examples' own pixels: every tile is a whole example photo, mirrored in every other column.
    """
    path = folder / f"mosaic-{megapixels:g}mp.jpg"
    width, height = compute_photo_size(megapixels)
    canvas = Image.new("RGB", (width, height))
    sources = []
    for source_path in MOSAIC_SOURCES:
        with Image.open(source_path) as source:
            sources.append(source.convert("RGB"))
    top, row = 0, 0
    while top < height:
        left, column = 0, 0
        tile_height = 0
        while left < width:
            tile = sources[(row + column) % len(sources)]
            if column % 2:
                tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            canvas.paste(tile, (left, top))
            left += tile.width
            tile_height = max(tile_height, tile.height)
            column += 1
        top += tile_height
        row += 1
    canvas.save(path, "JPEG", quality=TEST_PHOTO_QUALITY)
    return path


def find_hywu_executable() -> str:
    """Prefer the `hywu` script of the running interpreter's environment over one found on PATH."""
    beside_python = Path(sys.executable).parent / "hywu"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("hywu")
    if found is None:
        raise SystemExit("hywu executable not found; install the package with `pip install -e .` first")
    return found


def build_edit_command(hywu: str, photo: Path, output: Path, model: Path) -> list[str]:
    return [hywu, "edit", str(photo), STARTUP_INSTRUCTION, "-o", str(output), "--model", str(model), "--overwrite"]


def format_command(argv: list[str], temp_dir: Path) -> str:
    """Quote `argv` for a shell, writing the temporary folder as $TMP and the hywu script as `hywu`."""
    parts = [Path(part).name if part.endswith(os.sep + "hywu") else part for part in argv]
    return shlex.join(parts).replace(str(temp_dir), "$TMP")


def run_checked(argv: list[str]) -> None:
    completed = subprocess.run(argv, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(
            f"benchmark command failed with exit status {completed.returncode}: {shlex.join(argv)}\n"
            f"{completed.stderr.strip()}"
        )


def time_command(argv: list[str], runs: int) -> list[float]:
    """Run `argv` `runs` times and return each run's wall time in seconds."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run_checked(argv)
        seconds.append(time.perf_counter() - start)
    return seconds


def summarize_seconds(command: str, seconds: list[float]) -> dict:
    return {"command": command, "seconds": seconds, "median_s": statistics.median(seconds)}


# -- 1. start-up ----------------------------------------------------------------------------------------------


def measure_startup(hywu: str, photo: Path, model: Path, runs: int, temp_dir: Path) -> dict:
    help_command = [hywu, "--help"]
    edit_command = build_edit_command(hywu, photo, temp_dir / "startup-out.jpg", model)
    return {
        "help": summarize_seconds(format_command(help_command, temp_dir), time_command(help_command, runs)),
        "edit": summarize_seconds(format_command(edit_command, temp_dir), time_command(edit_command, runs)),
    }


# -- 2. edit compute ------------------------------------------------------------------------------------------


def decode_photo(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def encode_photo(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=ENCODE_QUALITY)
    return buffer.getvalue()


def time_call(function, *args) -> tuple[float, object]:
    """Call `function(*args)` once and return (wall seconds, its return value)."""
    start = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - start, value


def edit_one(pipe, image: Image.Image, instruction: str) -> Image.Image:
    return pipe.edit_batch([image], [instruction], seeds=[0])[0]


def warm_up(pipe, photo: Path) -> None:
    """Edit a small photo once per instruction so that first-call set-up is not timed."""
    image = decode_photo(photo)
    for instruction in INSTRUCTIONS:
        edit_one(pipe, image, instruction)


def time_decode_encode(photo: Path, runs: int) -> tuple[list[float], list[float], Image.Image]:
    decode_seconds, encode_seconds = [], []
    for _ in range(runs):
        elapsed, image = time_call(decode_photo, photo)
        decode_seconds.append(elapsed)
        encode_seconds.append(time_call(encode_photo, image)[0])
    return decode_seconds, encode_seconds, image


def measure_edit_compute(pipe, photos: dict[tuple[str, float], Path], runs: int) -> list[dict]:
    """Time decoding, encoding and editing each photo, keyed by (photo kind, megapixels)."""
    results = []
    for (kind, megapixels), photo in photos.items():
        decode_seconds, encode_seconds, image = time_decode_encode(photo, runs)
        codec_median = statistics.median(decode_seconds) + statistics.median(encode_seconds)
        edits = []
        for instruction in INSTRUCTIONS:
            edit_seconds = [time_call(edit_one, pipe, image, instruction)[0] for _ in range(runs)]
            edit_median = statistics.median(edit_seconds)
            edits.append(
                {
                    "instruction": instruction,
                    "edit_s": edit_seconds,
                    "edit_median_s": edit_median,
                    "ratio": edit_median / codec_median,
                }
            )
        results.append(
            {
                "photo": kind,
                "megapixels": megapixels,
                "width": image.width,
                "height": image.height,
                "decode_s": decode_seconds,
                "encode_s": encode_seconds,
                "decode_median_s": statistics.median(decode_seconds),
                "encode_median_s": statistics.median(encode_seconds),
                "edits": edits,
            }
        )
    return results


# -- 3. generator latency -------------------------------------------------------------------------------------


def measure_generator_latency(model: Path, threads: int, repeats: int) -> dict:
    """Run benchmarks/generator_latency.py and parse its per-batch lines."""
    argv = [sys.executable, str(GENERATOR_SCRIPT), "--model", str(model)]
    argv += ["--threads", str(threads), "--repeats", str(repeats)]
    completed = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"generator_latency.py failed with exit status {completed.returncode}:\n{completed.stderr}")
    batches = [
        {"batch": int(batch), "ms_per_call": float(per_call), "ms_per_instance": float(per_instance)}
        for batch, per_call, per_instance in GENERATOR_LINE_PATTERN.findall(completed.stdout)
    ]
    if not batches:
        raise SystemExit(
            f"no 'batch N: ... ms per instance' lines in generator_latency.py output:\n{completed.stdout}"
        )
    command = shlex.join(["python", "benchmarks/generator_latency.py", *argv[2:]])
    return {"command": command, "repeats": repeats, "output": completed.stdout.strip(), "batches": batches}


# -- 4. batch throughput --------------------------------------------------------------------------------------


def process_batch(pipe, photo: Path, batch_size: int) -> None:
    """Decode `batch_size` copies of `photo`, edit them in one `edit_batch` call and encode every result."""
    images = [decode_photo(photo) for _ in range(batch_size)]
    instructions = [INSTRUCTIONS[index % len(INSTRUCTIONS)] for index in range(batch_size)]
    edited = pipe.edit_batch(images, instructions, seeds=list(range(batch_size)))
    for image in edited:
        encode_photo(image)


def measure_throughput(pipe, photos: dict[float, Path], runs: int) -> list[dict]:
    results = []
    for megapixels, photo in photos.items():
        for batch_size in BATCH_SIZES:
            batch_seconds = [time_call(process_batch, pipe, photo, batch_size)[0] for _ in range(runs)]
            median = statistics.median(batch_seconds)
            results.append(
                {
                    "megapixels": megapixels,
                    "batch_size": batch_size,
                    "batch_s": batch_seconds,
                    "median_batch_s": median,
                    "images_per_minute": batch_size * 60 / median,
                }
            )
    return results


# -- 5. peak memory -------------------------------------------------------------------------------------------


def has_gnu_time(temp_dir: Path) -> bool:
    """Check that /usr/bin/time accepts GNU's -v -o and reports the maximum resident set size."""
    if not GNU_TIME.is_file():
        return False
    report = temp_dir / "time-check.txt"
    completed = subprocess.run([str(GNU_TIME), "-v", "-o", str(report), "true"], capture_output=True)
    return completed.returncode == 0 and report.is_file() and bool(GNU_TIME_RSS_PATTERN.search(report.read_text()))


def measure_rss_with_gnu_time(argv: list[str], report: Path) -> int:
    run_checked([str(GNU_TIME), "-v", "-o", str(report), *argv])
    match = GNU_TIME_RSS_PATTERN.search(report.read_text())
    if match is None:
        raise SystemExit(f"no 'Maximum resident set size' line in {report}")
    return int(match.group(1)) * 1024


def measure_rss_with_wrapper(argv: list[str], report: Path) -> int:
    run_checked([sys.executable, "-c", RSS_WRAPPER, str(report), *argv])
    max_rss = int(report.read_text())
    # ru_maxrss is in kibibytes on Linux and in bytes on macOS.
    return max_rss if sys.platform == "darwin" else max_rss * 1024


def measure_peak_memory(hywu: str, photos: dict[float, Path], model: Path, runs: int, temp_dir: Path) -> dict:
    use_gnu_time = has_gnu_time(temp_dir)
    report = temp_dir / "rss-report.txt"
    results = []
    for megapixels, photo in photos.items():
        argv = build_edit_command(hywu, photo, temp_dir / "memory-out.jpg", model)
        if use_gnu_time:
            samples = [measure_rss_with_gnu_time(argv, report) for _ in range(runs)]
            reported_argv = [str(GNU_TIME), "-v", "-o", str(report), *argv]
        else:
            samples = [measure_rss_with_wrapper(argv, report) for _ in range(runs)]
            reported_argv = ["python", "-c", "<RSS_WRAPPER of benchmarks/run.py>", str(report), *argv]
        command = format_command(reported_argv, temp_dir)
        results.append({"megapixels": megapixels, "command": command, "bytes": samples, "max_bytes": max(samples)})
    tool = "/usr/bin/time -v" if use_gnu_time else "resource.getrusage(RUSAGE_CHILDREN).ru_maxrss"
    return {"tool": tool, "results": results}


# -- targets --------------------------------------------------------------------------------------------------


def find_entry(entries: list[dict], megapixels: float, photo: str | None = None) -> dict | None:
    return next(
        (
            entry
            for entry in entries
            if entry["megapixels"] == megapixels and (photo is None or entry.get("photo") == photo)
        ),
        None,
    )


def judge_ratio_target(compute: list[dict], limit: float, name: str, photo: str) -> dict:
    entry = find_entry(compute, TARGET_RATIO_MP, photo)
    target = f"edit / (decode + encode) at most {limit:g} at {TARGET_RATIO_MP:g} MP, every instruction, {photo} photo"
    if entry is None:
        status = f"not measured (no {TARGET_RATIO_MP:g} MP photo)"
        return {"name": name, "target": target, "value": None, "status": status}
    worst = max(entry["edits"], key=lambda edit: edit["ratio"])
    value = f"{worst['ratio']:.2f} (worst: {worst['instruction']!r})"
    return {"name": name, "target": target, "value": value, "status": "met" if worst["ratio"] <= limit else "missed"}


def judge_throughput_target(throughput: list[dict]) -> dict:
    target = f"at least {TARGET_IMAGES_PER_MINUTE:g} images per minute at {TARGET_THROUGHPUT_MP:g} MP, best batch size"
    entries = [entry for entry in throughput if entry["megapixels"] == TARGET_THROUGHPUT_MP]
    if not entries:
        status = f"not measured (no {TARGET_THROUGHPUT_MP:g} MP photo)"
        return {"name": "batch throughput", "target": target, "value": None, "status": status}
    best = max(entries, key=lambda entry: entry["images_per_minute"])
    value = f"{best['images_per_minute']:.1f} (batch size {best['batch_size']})"
    met = best["images_per_minute"] >= TARGET_IMAGES_PER_MINUTE
    return {"name": "batch throughput", "target": target, "value": value, "status": "met" if met else "missed"}


def judge_memory_target(memory: dict) -> dict:
    target = f"peak resident memory of `hywu edit` at most {TARGET_MEMORY_BYTES / 1e9:g} GB at {TARGET_MEMORY_MP:g} MP"
    entry = find_entry(memory["results"], TARGET_MEMORY_MP)
    if entry is None:
        status = f"not measured (no {TARGET_MEMORY_MP:g} MP photo)"
        return {"name": "peak memory", "target": target, "value": None, "status": status}
    status = "met" if entry["max_bytes"] <= TARGET_MEMORY_BYTES else "missed"
    return {"name": "peak memory", "target": target, "value": format_bytes(entry["max_bytes"]), "status": status}


def judge_targets(results: dict) -> list[dict]:
    ratios = [
        judge_ratio_target(results["edit_compute"], limit, f"edit compute{suffix}, {photo} photo", photo)
        for photo in PHOTO_KINDS
        for limit, suffix in ((TARGET_RATIO, ""), (STRETCH_RATIO, " (stretch)"))
    ]
    return [
        *ratios,
        judge_throughput_target(results["throughput"]),
        judge_memory_target(results["peak_memory"]),
    ]


# -- Markdown -------------------------------------------------------------------------------------------------


def format_bytes(count: int | None) -> str:
    return "unknown" if count is None else f"{count / 1e9:.2f} GB"


def count_runs(runs: int) -> str:
    return f"{runs} run" if runs == 1 else f"{runs} runs"


def format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def format_size(entry: dict) -> str:
    return f"{entry['megapixels']:g} MP ({entry['width']} x {entry['height']})"


def render_machine(machine: dict, settings: dict) -> list[str]:
    load = machine["load_average_at_start"]
    return [
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']}, {machine['cpu_cores']} cores",
        f"- torch threads (`torch.get_num_threads()`): {machine['torch_threads']}, "
        f"OMP_NUM_THREADS: {machine['omp_num_threads']}",
        f"- RAM: {format_bytes(machine['memory_bytes'])}",
        f"- load average at start (1, 5, 15 min): {', '.join(f'{value:.2f}' for value in load) if load else 'unknown'}",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}, torch {machine['torch']}, Pillow {machine['pillow']}",
        f"- hywu revision: {machine['git_revision']}",
        f"- date: {machine['date']}",
        "",
        "## Settings",
        "",
        f"- command: `{settings['command']}`",
        f"- model: `{settings['model']}`",
        f"- runs per measurement: {settings['runs']} (medians reported)",
        f"- photo sizes: {', '.join(f'{size:g}' for size in settings['sizes_mp'])} MP, 4:3 JPEG quality "
        f"{TEST_PHOTO_QUALITY}, in a temporary folder written as `$TMP`:",
        "  - upscaled: `examples/misty-lake.jpg` resized (Lanczos), for every part;",
        "  - mosaic: `examples/dune-grass.jpg` and `misty-lake.jpg` (1600 x 1000 each) tiled at their own resolution, "
        "every other tile mirrored, for edit compute only. It keeps the examples' own detail, so Pillow decodes and "
        "encodes it more slowly than the upscaled photo; a camera photo with sensor noise is slower still.",
        "- parts: start-up on the smallest size; edit compute on every size; batch throughput on every size but the "
        "largest; peak memory on every size but the smallest (one size plays every part)",
        "",
    ]


def render_targets(targets: list[dict]) -> list[str]:
    lines = ["## Targets", "", "| target | measured | status |", "| --- | --- | --- |"]
    for target in targets:
        lines.append(f"| {target['target']} | {target['value'] or '-'} | {target['status']} |")
    return lines + [""]


def render_startup(startup: dict, runs: int) -> list[str]:
    lines = [
        "## 1. Start-up",
        "",
        f"Wall time of the whole subprocess, median of {count_runs(runs)}.",
        "",
        "| command | median | runs (s) |",
        "| --- | --- | --- |",
    ]
    for entry in (startup["help"], startup["edit"]):
        samples = ", ".join(f"{value:.2f}" for value in entry["seconds"])
        lines.append(f"| `{entry['command']}` | {entry['median_s']:.2f} s | {samples} |")
    return lines + [""]


def render_edit_compute(compute: list[dict], runs: int) -> list[str]:
    lines = [
        "## 2. Edit compute",
        "",
        "One process with the pipeline loaded once and one warm-up edit per instruction on the smallest photo. "
        f"Medians of {count_runs(runs)} of:",
        "",
        '- decode: `image = Image.open(path); image.load()` (plus `.convert("RGB")` for non-RGB files)',
        f'- encode: `image.save(io.BytesIO(), "JPEG", quality={ENCODE_QUALITY})` of the decoded photo',
        "- edit: `pipe.edit_batch([image], [instruction], seeds=[0])`",
        "- ratio: median edit / (median decode + median encode)",
        "",
        "| photo | size | decode | encode | instruction | edit | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in compute:
        for edit in entry["edits"]:
            lines.append(
                f"| {entry.get('photo', 'upscaled')} | {format_size(entry)} | {format_ms(entry['decode_median_s'])}"
                f" | {format_ms(entry['encode_median_s'])} | {edit['instruction']}"
                f" | {format_ms(edit['edit_median_s'])} | {edit['ratio']:.2f} |"
            )
    return lines + [""]


def render_generator(generator: dict) -> list[str]:
    lines = [
        "## 3. Generator latency",
        "",
        f"Command: `{generator['command']}` (median of {generator['repeats']} calls per batch size).",
        "",
        "| batch | per call | per instance |",
        "| --- | --- | --- |",
    ]
    for batch in generator["batches"]:
        lines.append(f"| {batch['batch']} | {batch['ms_per_call']:.1f} ms | {batch['ms_per_instance']:.1f} ms |")
    return lines + ["", "Full output:", "", "```", generator["output"], "```", ""]


def render_throughput(throughput: list[dict], runs: int) -> list[str]:
    lines = [
        "## 4. Batch throughput",
        "",
        "One process with the pipeline loaded once. Each batch decodes the photo once per image, calls "
        "`pipe.edit_batch(images, instructions, seeds=list(range(batch_size)))` with the instructions of section 2 "
        f"in turn, and encodes every result as JPEG quality {ENCODE_QUALITY} into a `BytesIO`. "
        f"Median of {count_runs(runs)}; images per minute = batch size x 60 / median batch time.",
        "",
        "| size | batch size | median batch time | images per minute |",
        "| --- | --- | --- | --- |",
    ]
    for entry in throughput:
        lines.append(
            f"| {entry['megapixels']:g} MP | {entry['batch_size']} | {entry['median_batch_s']:.2f} s"
            f" | {entry['images_per_minute']:.1f} |"
        )
    return lines + [""]


def render_memory(memory: dict, runs: int) -> list[str]:
    lines = [
        "## 5. Peak memory",
        "",
        f"Maximum resident set size of `hywu edit` as reported by {memory['tool']}, largest of {count_runs(runs)}.",
        "",
        "| size | command | peak RSS |",
        "| --- | --- | --- |",
    ]
    for entry in memory["results"]:
        lines.append(f"| {entry['megapixels']:g} MP | `{entry['command']}` | {format_bytes(entry['max_bytes'])} |")
    return lines + [""]


def render_markdown(results: dict) -> str:
    runs = results["settings"]["runs"]
    lines = ["# hywu benchmark results", ""]
    if results["settings"]["quick"]:
        lines += ["Quick run (`--quick`): tiny photos and 1 run, for checking the script only.", ""]
    lines += render_machine(results["machine"], results["settings"])
    lines += render_targets(results["targets"])
    lines += render_startup(results["startup"], runs)
    lines += render_edit_compute(results["edit_compute"], runs)
    lines += render_generator(results["generator_latency"])
    lines += render_throughput(results["throughput"], runs)
    lines += render_memory(results["peak_memory"], runs)
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------------------


def select_part_sizes(sizes: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return (throughput sizes, memory sizes): all but the largest, and all but the smallest."""
    if len(sizes) == 1:
        return sizes, sizes
    return sizes[:-1], sizes[1:]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_benchmarks(args: argparse.Namespace, temp_dir: Path) -> dict:
    from hywu_cli.pipeline import load_pipeline

    hywu = find_hywu_executable()
    throughput_sizes, memory_sizes = select_part_sizes(args.sizes)
    log(f"making test photos of {', '.join(f'{size:g}' for size in args.sizes)} MP")
    photos = {size: make_test_photo(size, temp_dir) for size in args.sizes}
    compute_photos = {("upscaled", size): photo for size, photo in photos.items()}
    compute_photos.update({("mosaic", size): make_mosaic_photo(size, temp_dir) for size in args.sizes})
    results = {
        "machine": describe_machine(),
        "settings": {
            "command": shlex.join(["python", *sys.argv]),
            "model": str(args.model),
            "runs": args.runs,
            "sizes_mp": list(args.sizes),
            "quick": args.quick,
        },
    }

    log("1. start-up")
    results["startup"] = measure_startup(hywu, photos[args.sizes[0]], args.model, args.runs, temp_dir)

    log("2. edit compute")
    pipe = load_pipeline(args.model, device="cpu")
    warm_up(pipe, photos[args.sizes[0]])
    results["edit_compute"] = measure_edit_compute(pipe, compute_photos, args.runs)

    log("3. generator latency")
    repeats = QUICK_GENERATOR_REPEATS if args.quick else GENERATOR_REPEATS
    results["generator_latency"] = measure_generator_latency(args.model, torch.get_num_threads(), repeats)

    log("4. batch throughput")
    throughput_photos = {size: photos[size] for size in throughput_sizes}
    results["throughput"] = measure_throughput(pipe, throughput_photos, args.runs)
    del pipe

    log("5. peak memory")
    memory_photos = {size: photos[size] for size in memory_sizes}
    results["peak_memory"] = measure_peak_memory(hywu, memory_photos, args.model, args.runs, temp_dir)

    results["targets"] = judge_targets(results)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hywu-bench-") as temp:
        results = run_benchmarks(args, Path(temp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_markdown(results) + "\n")
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out} and {args.json}")
    for target in results["targets"]:
        log(f"{target['name']}: {target['status']}" + (f" ({target['value']})" if target["value"] else ""))


if __name__ == "__main__":
    main()
