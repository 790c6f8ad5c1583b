"""The gradient-conflict measurement: cosine of known vectors, and a full run that writes its three outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hywu_cli import conflict


ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "weights" / "hywu-lite"

pytestmark = pytest.mark.skipif(not (MODEL / "manifest.json").is_file(), reason="weights/hywu-lite not built yet")


def test_cosine_table_known_vectors():
    gradients = {"brighter": torch.tensor([1.0, 2.0]), "darker": torch.tensor([-2.0, -4.0]), "blur": torch.tensor([2.0, -1.0])}

    table = conflict.cosine_table(gradients, [("brighter", "darker"), ("brighter", "blur"), ("blur", "blur")])

    assert table == {"brighter/darker": -1.0, "brighter/blur": 0.0, "blur/blur": 1.0}


def test_conflict_script_writes_outputs(tmp_path):
    train = tmp_path / "photos" / "train"
    train.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(2):
        Image.fromarray((rng.random((90, 120, 3)) * 255).astype(np.uint8)).save(train / f"photo{index}.jpg")
    out = tmp_path / "docs" / "conflict"

    conflict.main(
        ["--model", str(MODEL), "--photos", str(tmp_path / "photos"), "--out", str(out)]
        + ["--batches", "1", "--batch-size", "2", "--crop-size", "48"]
    )

    payload = json.loads(out.with_suffix(".json").read_text())
    for result in payload["results"].values():
        assert set(result["conflicting"]) == {f"{a}/{b}" for a, b in conflict.CONFLICTING_PAIRS}
        assert all(-1.0 <= value <= 1.0 for value in result["conflicting"].values())
        assert result["mean_unrelated"] == pytest.approx(
            sum(result["unrelated"].values()) / len(result["unrelated"]), abs=1e-3
        )
    assert "brighter/darker" in out.with_suffix(".md").read_text()
    pytest.importorskip("matplotlib")
    assert out.with_suffix(".png").stat().st_size > 1000
