"""Tests for model folders (hywu_cli.models) and downloads (hywu_cli.hub, `hywu download-weights`).

HTTP downloads go to a server each test starts on 127.0.0.1; Hub downloads use stand-ins for the
huggingface_hub functions. Nothing here reaches the network.
"""

from __future__ import annotations

import json
import struct
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hywu_cli import hub, models
from hywu_cli.errors import DownloadError, ModelFilesError, OutputPathError


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 12345\n"
)


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    """Serialise tensors given as (dtype, shape, raw bytes) in the safetensors layout."""
    header: dict[str, object] = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + data


def make_model_dir(folder: Path, name: str = "hywu-lite", weight_bytes: int = 4096) -> dict:
    """Create a small but valid model folder with a manifest and return the manifest."""
    (folder / "editor").mkdir(parents=True)
    (folder / "editor" / "config.json").write_text('{"hidden_size": 8}\n')
    raw = bytes(range(256)) * (weight_bytes // 256)
    (folder / "editor" / "model.safetensors").write_bytes(safetensors_bytes({"weight": ("F32", [len(raw) // 4], raw)}))
    return models.build_manifest(
        folder, name, "0.1.0", components={"editor": "editor"}, licences={"editor": "Apache-2.0 test licence"}
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "RETRY_DELAY_S", 0.0)
    monkeypatch.setenv("HYWU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HYWU_MODEL", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path / "home"


# --- model folders -------------------------------------------------------------------------------------------


def test_build_manifest_lists_every_file(tmp_path):
    manifest = make_model_dir(tmp_path / "m")

    paths = [entry["path"] for entry in manifest["files"]]
    on_disk = json.loads((tmp_path / "m" / "manifest.json").read_text())

    assert paths == ["editor/config.json", "editor/model.safetensors"]
    assert on_disk == manifest
    assert manifest["format"] == 1
    assert manifest["licences"] == {"editor": "Apache-2.0 test licence"}
    assert models.verify_model_dir(tmp_path / "m") == []


def test_verify_reports_each_problem(tmp_path):
    folder = tmp_path / "m"
    make_model_dir(folder)
    (folder / "editor" / "config.json").write_text('{"hidden_size": 9}\n')  # same size, other content

    assert models.verify_model_dir(folder, check_hashes=False) == []
    problems = models.verify_model_dir(folder)
    assert len(problems) == 1
    assert problems[0].startswith("editor/config.json: sha256")

    (folder / "editor" / "config.json").write_text("{}")
    assert "2 bytes, expected" in models.verify_model_dir(folder)[0]

    (folder / "editor" / "config.json").unlink()
    assert models.verify_model_dir(folder)[0] == "editor/config.json: missing"


def test_quick_check_skips_edited_model_card(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").write_text("# model card\n")
    make_model_dir(folder)
    (folder / "README.md").write_text("# model card, with a corrected sentence\n")

    models.check_model_dir(folder)  # the quick check before loading
    problems = models.verify_model_dir(folder)

    assert len(problems) == 1
    assert problems[0].startswith("README.md: ")


def test_verify_detects_lfs_pointer(tmp_path):
    folder = tmp_path / "m"
    make_model_dir(folder)
    (folder / "editor" / "model.safetensors").write_bytes(LFS_POINTER)

    problems = models.verify_model_dir(folder, check_hashes=False)

    assert problems == [
        f"editor/model.safetensors: Git LFS pointer instead of the file content ({len(LFS_POINTER)} bytes)"
    ]


def test_verify_missing_manifest(tmp_path):
    (tmp_path / "m").mkdir()

    problems = models.verify_model_dir(tmp_path / "m")

    assert len(problems) == 1
    assert "manifest.json is missing" in problems[0]


def test_broken_folder_hint_given_once(tmp_path):
    folder = tmp_path / "my-copy"
    folder.mkdir()

    with pytest.raises(ModelFilesError) as raised:
        models.check_model_dir(folder)

    message = str(raised.value)
    assert "manifest.json is missing" in message
    assert message.count("hywu download-weights") == 1
    assert f"hywu download-weights --dest {folder} --url URL" in message
    assert "download-weights my-copy" not in message


def test_manifest_path_outside_folder_rejected(tmp_path):
    folder = tmp_path / "m"
    make_model_dir(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../outside.json"
    (folder / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ModelFilesError, match="outside the model folder"):
        models.load_manifest(folder)


def test_safetensors_check_accepts_library_file(tmp_path):
    numpy = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "real.safetensors"
    safetensors_numpy.save_file(
        {"a": numpy.ones((3, 5), dtype=numpy.float16), "b": numpy.zeros(7, dtype=numpy.int64)}, str(path)
    )

    models.check_safetensors_file(path)


def test_safetensors_lfs_pointer_names_file_and_fix(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(LFS_POINTER)

    with pytest.raises(ModelFilesError) as raised:
        models.check_safetensors_file(path, model_name="hywu-lite")

    message = str(raised.value)
    assert str(path) in message
    assert "Git LFS pointer" in message
    assert "hywu download-weights hywu-lite" in message


def test_safetensors_cut_in_half_names_file_and_fix(tmp_path):
    path = tmp_path / "model.safetensors"
    full = safetensors_bytes({"w": ("F32", [1024], b"\x01" * 4096)})
    path.write_bytes(full[: len(full) // 2])

    with pytest.raises(ModelFilesError) as raised:
        models.check_safetensors_file(path)

    message = str(raised.value)
    assert str(path) in message
    assert "truncated" in message
    assert "hywu download-weights" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "too short"),
        (struct.pack("<Q", 10**12) + b"{}", "exceeds"),
        (struct.pack("<Q", 4) + b"nope", "not valid JSON"),
        (safetensors_bytes({"w": ("F32", [3], b"\x00" * 8)}), "needs 12 bytes"),
        (safetensors_bytes({"w": ("F32", [2], b"\x00" * 8)}) + b"extra", "padded"),
    ],
)
def test_safetensors_header_problems(tmp_path, content, expected):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)

    assert expected in models.safetensors_header_problem(path)


def test_resolve_prefers_hywu_home(tmp_path, isolated_home, monkeypatch):
    checkout = tmp_path / "checkout"
    make_model_dir(checkout / "weights" / "hywu-lite")
    monkeypatch.setattr(models, "source_checkout", lambda: checkout)

    assert models.resolve_model_dir("hywu-lite") == checkout / "weights" / "hywu-lite"

    make_model_dir(isolated_home / "models" / "hywu-lite")
    assert models.resolve_model_dir("hywu-lite") == isolated_home / "models" / "hywu-lite"


def test_resolve_existing_folder_path(tmp_path):
    folder = tmp_path / "anywhere"
    folder.mkdir()

    assert models.resolve_model_dir(str(folder)) == folder


def test_resolve_missing_model_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "source_checkout", lambda: None)

    with pytest.raises(ModelFilesError, match="hywu download-weights other-model"):
        models.resolve_model_dir("other-model")
    with pytest.raises(ModelFilesError, match="model folder not found"):
        models.resolve_model_dir(str(tmp_path / "no" / "such"))


def test_missing_model_hint_names_a_source(monkeypatch):
    monkeypatch.setattr(models, "source_checkout", lambda: None)

    with pytest.raises(ModelFilesError) as packaged:
        models.resolve_model_dir("hywu-lite")
    with pytest.raises(ModelFilesError) as other:
        models.resolve_model_dir("other-model")

    for message in (str(packaged.value), str(other.value)):
        assert "--url URL" in message
        assert "--repo-id ORG/NAME" in message
        assert message.count("hywu download-weights") == 1
    assert "pip install -e ." in str(packaged.value)
    assert "weights/hywu-lite" in str(packaged.value)
    assert "pip install -e ." not in str(other.value)


def test_incomplete_checkout_copy_hint(tmp_path, isolated_home, monkeypatch):
    checkout = tmp_path / "checkout"
    (checkout / "weights" / "hywu-lite" / "text_encoder").mkdir(parents=True)
    monkeypatch.setattr(models, "source_checkout", lambda: checkout)

    with pytest.raises(ModelFilesError) as raised:
        models.resolve_model_dir("hywu-lite")

    message = str(raised.value)
    assert "this checkout's copy of hywu-lite is incomplete" in message
    assert str(isolated_home / "models" / "hywu-lite") in message
    assert "move that folder away" not in message


def test_name_not_shadowed_by_folder_in_working_directory(tmp_path, isolated_home, monkeypatch):
    make_model_dir(isolated_home / "models" / "hywu-lite")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hywu-lite").mkdir()

    assert models.resolve_model_dir("hywu-lite") == isolated_home / "models" / "hywu-lite"
    assert models.resolve_model_dir("./hywu-lite") == Path("./hywu-lite")


@pytest.mark.parametrize(
    ("value", "is_path"),
    [("hywu-lite", False), ("v1.2", False), ("./m", True), ("../m", True), ("~/m", True), ("a/b", True),
     ("/abs/m", True), (".hidden", True)],
)  # fmt: skip
def test_looks_like_path(value, is_path):
    assert models.looks_like_path(value) is is_path


def test_resolve_rejects_value_neither_name_nor_path():
    with pytest.raises(ModelFilesError, match="not a model name") as raised:
        models.resolve_model_dir("my model")

    assert "./my model" in str(raised.value)


def test_source_checkout_finds_pyproject():
    checkout = models.source_checkout()

    assert checkout is not None
    assert (checkout / "pyproject.toml").is_file()


# --- HTTP server -----------------------------------------------------------------------------------------------


class ModelServer:
    """Serves a model folder under /m/ with switchable faults, recording each request's path and Range header."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.cut_once: dict[str, int] = {}  # path -> bytes sent before the connection closes, on the next request
        self.corrupt_requests: dict[str, int] = {}  # path -> number of requests served with damaged bytes
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/m"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = urllib.parse.unquote(self.path.removeprefix("/m/"))
                range_header = self.headers.get("Range")

                # Record the request and take this request's faults
                with owner.lock:
                    owner.requests.append((path, range_header))
                    cut = owner.cut_once.pop(path, None)
                    corrupt = owner.corrupt_requests.get(path, 0) > 0
                    if corrupt:
                        owner.corrupt_requests[path] -= 1

                if path not in owner.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return

                body = owner.files[path]
                if corrupt:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]

                # Respond to a Range request with 206, unless this server imitates one without Range support
                start = 0
                if range_header and not owner.ignore_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()

                if cut is not None:
                    self.wfile.write(body[start : start + cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def file_requests(self, path: str) -> list[str | None]:
        return [range_header for requested, range_header in self.requests if requested == path]


@pytest.fixture
def served_model(tmp_path):
    source = tmp_path / "source-model"
    manifest = make_model_dir(source, weight_bytes=200_000)
    files = {entry["path"]: (source / entry["path"]).read_bytes() for entry in manifest["files"]}
    files["manifest.json"] = (source / "manifest.json").read_bytes()
    server = ModelServer(files)
    server.start()
    yield server
    server.stop()


WEIGHTS = "editor/model.safetensors"


def test_http_download_complete(tmp_path, served_model, isolated_home):
    result = hub.download_model("hywu-lite", url=served_model.url)

    dest = isolated_home / "models" / "hywu-lite"
    assert result.path == dest
    assert models.verify_model_dir(dest) == []
    assert result.file_count == 2
    assert result.fetched_bytes == result.total_bytes
    assert not hub.staging_dir(dest).exists()


def test_interrupted_transfer_resumes_in_same_run(tmp_path, served_model):
    served_model.cut_once[WEIGHTS] = 50_000
    dest = tmp_path / "dest"

    result = hub.download_model("hywu-lite", url=served_model.url, dest=dest, retries=2)

    assert models.verify_model_dir(dest) == []
    assert served_model.file_requests(WEIGHTS) == [None, "bytes=50000-"]
    assert result.fetched_bytes == result.total_bytes


def test_interrupted_transfer_resumes_next_run(tmp_path, served_model):
    served_model.cut_once[WEIGHTS] = 70_000
    dest = tmp_path / "dest"

    with pytest.raises(DownloadError, match="run the same command again to resume"):
        hub.download_model("hywu-lite", url=served_model.url, dest=dest, retries=0)

    assert not dest.exists()
    part = hub.staging_dir(dest) / (WEIGHTS + ".part")
    assert part.stat().st_size == 70_000

    hub.download_model("hywu-lite", url=served_model.url, dest=dest, retries=0)

    assert models.verify_model_dir(dest) == []
    assert served_model.file_requests(WEIGHTS) == [None, "bytes=70000-"]


def test_server_without_range_support_restarts_file(tmp_path, served_model):
    served_model.cut_once[WEIGHTS] = 30_000
    served_model.ignore_range = True
    dest = tmp_path / "dest"

    hub.download_model("hywu-lite", url=served_model.url, dest=dest, retries=1)

    assert models.verify_model_dir(dest) == []


def test_corrupt_file_fetched_again(tmp_path, served_model):
    served_model.corrupt_requests[WEIGHTS] = 1
    dest = tmp_path / "dest"

    hub.download_model("hywu-lite", url=served_model.url, dest=dest)

    assert models.verify_model_dir(dest) == []
    assert len(served_model.file_requests(WEIGHTS)) == 2


def test_persistently_corrupt_file_reported(tmp_path, served_model):
    served_model.corrupt_requests[WEIGHTS] = 99
    dest = tmp_path / "dest"

    with pytest.raises(DownloadError, match="does not match the manifest"):
        hub.download_model("hywu-lite", url=served_model.url, dest=dest)

    assert not dest.exists()


def test_corrupt_download_keeps_previous_copy(tmp_path, served_model):
    dest = tmp_path / "dest"
    make_model_dir(dest)
    before = {path.relative_to(dest): path.read_bytes() for path in dest.rglob("*") if path.is_file()}
    served_model.corrupt_requests[WEIGHTS] = 99

    with pytest.raises(DownloadError):
        hub.download_model("hywu-lite", url=served_model.url, dest=dest)

    after = {path.relative_to(dest): path.read_bytes() for path in dest.rglob("*") if path.is_file()}
    assert after == before


def test_download_replaces_previous_copy_reusing_files(tmp_path, served_model):
    dest = tmp_path / "dest"
    make_model_dir(dest, weight_bytes=1024)  # same config.json, different weights

    result = hub.download_model("hywu-lite", url=served_model.url, dest=dest)

    assert models.verify_model_dir(dest) == []
    assert served_model.file_requests("editor/config.json") == []
    assert result.fetched_bytes == len(served_model.files[WEIGHTS])
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".dest")] == []


def test_download_refuses_folder_with_other_files(tmp_path, served_model):
    dest = tmp_path / "photos"
    dest.mkdir()
    (dest / "holiday.jpg").write_bytes(b"precious")

    with pytest.raises(OutputPathError) as raised:
        hub.download_model("hywu-lite", url=served_model.url, dest=dest)

    message = str(raised.value)
    assert "not empty" in message
    assert "manifest.json" in message
    assert f"--dest {dest / 'hywu-lite'}" in message
    assert (dest / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(path.name for path in dest.iterdir()) == ["holiday.jpg"]
    assert served_model.requests == []


def test_download_into_model_folder_keeps_other_files(tmp_path, served_model):
    dest = tmp_path / "dest"
    (dest / "extra").mkdir(parents=True)
    (dest / "extra" / "old-only.bin").write_bytes(b"part of the old model")
    make_model_dir(dest, weight_bytes=1024)
    (dest / "notes.txt").write_text("mine")

    hub.download_model("hywu-lite", url=served_model.url, dest=dest)

    assert models.verify_model_dir(dest) == []
    assert (dest / "notes.txt").read_text() == "mine"
    assert not (dest / "extra").exists()
    assert not (dest / hub.REPLACED_MANIFEST_NAME).exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_download_into_empty_existing_folder(tmp_path, served_model):
    dest = tmp_path / "dest"
    dest.mkdir()

    hub.download_model("hywu-lite", url=served_model.url, dest=dest)

    assert models.verify_model_dir(dest) == []


def test_missing_manifest_404(tmp_path, served_model):
    del served_model.files["manifest.json"]

    with pytest.raises(DownloadError, match="HTTP 404"):
        hub.download_model("hywu-lite", url=served_model.url, dest=tmp_path / "dest")

    assert not (tmp_path / "dest").exists()


def test_missing_file_404(tmp_path, served_model):
    del served_model.files[WEIGHTS]

    with pytest.raises(DownloadError, match=r"model\.safetensors: HTTP 404"):
        hub.download_model("hywu-lite", url=served_model.url, dest=tmp_path / "dest")

    assert not (tmp_path / "dest").exists()


def test_manifest_escaping_folder_rejected(tmp_path, served_model):
    manifest = json.loads(served_model.files["manifest.json"])
    manifest["files"][0]["path"] = "../../evil.json"
    served_model.files["manifest.json"] = json.dumps(manifest).encode()

    with pytest.raises(DownloadError, match="outside the model folder"):
        hub.download_model("hywu-lite", url=served_model.url, dest=tmp_path / "dest")

    assert not (tmp_path / "evil.json").exists()


def test_offline_fails_before_any_request(tmp_path, served_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        hub.download_model("hywu-lite", url=served_model.url, dest=tmp_path / "dest")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        hub.download_model("hywu-lite", repo_id="org/hywu-lite", dest=tmp_path / "dest")

    assert served_model.requests == []


def test_no_source_verifies_local_copy(isolated_home):
    folder = isolated_home / "models" / "hywu-lite"
    make_model_dir(folder)

    result = hub.download_model("hywu-lite")

    assert result.source == "local"
    assert result.path == folder
    assert result.fetched_bytes == 0


def test_no_source_reports_broken_local_copy(isolated_home):
    folder = isolated_home / "models" / "hywu-lite"
    make_model_dir(folder)
    (folder / "editor" / "model.safetensors").write_bytes(LFS_POINTER)

    with pytest.raises(ModelFilesError, match="Git LFS pointer"):
        hub.download_model("hywu-lite")


# --- Hugging Face Hub (stand-in functions) ----------------------------------------------------------------------


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """Replace hf_hub_download and snapshot_download with copies from a local repository folder."""
    import huggingface_hub

    repository = tmp_path / "repo"
    make_model_dir(repository)
    cache = tmp_path / "hub-cache"
    calls: list[tuple[str, object]] = []

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kwargs):
        calls.append(("snapshot", sorted(allow_patterns or [])))
        if repo_id != "org/hywu-lite":
            raise huggingface_hub.errors.LocalEntryNotFoundError(f"Repository Not Found for {repo_id}")
        for pattern in allow_patterns:
            target = cache / pattern
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((repository / pattern).read_bytes())
        return str(cache)

    def hf_hub_download(repo_id, filename, *, revision=None, force_download=False, **kwargs):
        calls.append(("file", filename))
        if repo_id != "org/hywu-lite":
            raise huggingface_hub.errors.LocalEntryNotFoundError(f"Repository Not Found for {repo_id}")
        target = cache / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((repository / filename).read_bytes())
        return str(target)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    return repository, cache, calls


def test_hub_download(tmp_path, fake_hub):
    result = hub.download_model("hywu-lite", repo_id="org/hywu-lite", dest=tmp_path / "dest")

    assert models.verify_model_dir(tmp_path / "dest") == []
    assert result.source == "hf://org/hywu-lite@main"


def test_hub_corrupt_cache_fetched_again(tmp_path, fake_hub, monkeypatch):
    import huggingface_hub

    repository, cache, calls = fake_hub
    real_snapshot = huggingface_hub.snapshot_download

    def corrupting_snapshot(repo_id, **kwargs):
        folder = Path(real_snapshot(repo_id, **kwargs))
        (folder / WEIGHTS).write_bytes(b"\x00" * (folder / WEIGHTS).stat().st_size)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", corrupting_snapshot)

    hub.download_model("hywu-lite", repo_id="org/hywu-lite", dest=tmp_path / "dest")

    assert models.verify_model_dir(tmp_path / "dest") == []
    assert ("file", WEIGHTS) in calls


def test_hub_missing_repository(tmp_path, fake_hub):
    with pytest.raises(DownloadError, match="Repository Not Found"):
        hub.download_model("hywu-lite", repo_id="org/missing", dest=tmp_path / "dest")

    assert not (tmp_path / "dest").exists()


# --- `hywu download-weights` ----------------------------------------------------------------------------------


def run_cli(*args: str):
    from hywu_cli.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_download_over_http(tmp_path, served_model):
    result = run_cli("download-weights", "hywu-lite", "--url", served_model.url, "--dest", str(tmp_path / "d"))

    assert result.exit_code == 0, result.output
    assert "ready at" in result.stdout
    assert models.verify_model_dir(tmp_path / "d") == []


def test_cli_download_interrupted_then_resumed(tmp_path, served_model):
    served_model.cut_once[WEIGHTS] = 10_000
    args = ["download-weights", "--url", served_model.url, "--dest", str(tmp_path / "d"), "--retries", "0"]

    first = run_cli(*args)
    second = run_cli(*args)

    assert first.exit_code == 1
    assert "resume" in first.stderr
    assert second.exit_code == 0, second.output
    assert served_model.file_requests(WEIGHTS)[-1] == "bytes=10000-"


def test_cli_download_404(tmp_path, served_model):
    result = run_cli("download-weights", "--url", served_model.url + "/nope", "--dest", str(tmp_path / "d"))

    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert "Traceback" not in result.output


def test_cli_download_offline(tmp_path, served_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    result = run_cli("download-weights", "--repo-id", "org/hywu-lite", "--dest", str(tmp_path / "d"))

    assert result.exit_code == 1
    assert "HF_HUB_OFFLINE" in result.stderr
    assert "downloading" not in result.stderr


def test_cli_download_into_working_directory(tmp_path, served_model, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    result = run_cli("download-weights", "--url", served_model.url, "--dest", ".")

    assert result.exit_code == 0, result.output
    assert models.verify_model_dir(work) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["source-model", "work"]
    assert not any(path.name.endswith(".download") for path in work.iterdir())


def test_cli_download_refuses_unrelated_folder(tmp_path, served_model):
    dest = tmp_path / "documents"
    dest.mkdir()
    (dest / "letter.txt").write_text("keep")

    result = run_cli("download-weights", "--url", served_model.url, "--dest", str(dest))

    assert result.exit_code == 1
    assert "not empty" in result.stderr
    assert "--dest" in result.stderr
    assert "downloading" not in result.stderr
    assert (dest / "letter.txt").read_text() == "keep"


def test_cli_verifies_local_copy(isolated_home):
    make_model_dir(isolated_home / "models" / "hywu-lite")

    result = run_cli("download-weights", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == "local"
    assert data["path"] == str(isolated_home / "models" / "hywu-lite")


def test_cli_rejects_bad_download_arguments(served_model):
    both = run_cli("download-weights", "--url", served_model.url, "--repo-id", "org/x")
    scheme = run_cli("download-weights", "--url", "ftp://127.0.0.1/m")
    name = run_cli("download-weights", "../escape")

    assert both.exit_code == 2
    assert scheme.exit_code == 2
    assert "http://" in scheme.stderr
    assert name.exit_code == 2
    assert served_model.requests == []
