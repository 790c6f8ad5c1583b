"""Evaluation bookkeeping: per-grade scores and the grade-matched wording ratio."""

from __future__ import annotations

import pytest
import torch

from hywu_cli.evaluation import EvaluationResult, FamilyScore, evaluate, wording_ratio


def score(family: str, by_grade: dict[str, tuple[float, int]]) -> FamilyScore:
    count = sum(samples for _, samples in by_grade.values())
    mean = sum(value * samples for value, samples in by_grade.values()) / count
    return FamilyScore(
        family,
        mean,
        0.9,
        count,
        psnr_by_grade={grade: value for grade, (value, _) in by_grade.items()},
        samples_by_grade={grade: samples for grade, (_, samples) in by_grade.items()},
    )


def test_wording_ratio_matches_grades():
    # The training set is mostly slight (high PSNR) and the held-out set mostly strong. Grade by grade the two sets
    # score the same, so the matched ratio is 1 while the plain ratio of means is far below 1.
    training = EvaluationResult({"warmer": score("warmer", {"slight": (44.0, 9), "strong": (30.0, 1)})})
    held_out = EvaluationResult({"warmer": score("warmer", {"slight": (44.0, 1), "strong": (30.0, 3)})})

    ratio = wording_ratio(held_out, training)

    assert held_out.mean_psnr / training.mean_psnr == pytest.approx(33.5 / 42.6)
    assert ratio["ratio"] == pytest.approx(1.0)
    assert ratio["training_psnr_grade_matched"] == pytest.approx(33.5)


def test_wording_ratio_skips_unmatched_grades():
    training = EvaluationResult(
        {
            "warmer": score("warmer", {"normal": (40.0, 4)}),
            "invert": score("invert", {"normal": (30.0, 2), "strong": (20.0, 2)}),
        }
    )
    held_out = EvaluationResult(
        {
            "warmer": score("warmer", {"normal": (36.0, 2), "slight": (50.0, 2)}),  # no slight training score
            "invert": score("invert", {"strong": (18.0, 3)}),
            "night": score("night", {"normal": (25.0, 3)}),  # not in the training result
        }
    )

    ratio = wording_ratio(held_out, training)

    assert ratio["families"] == 2
    assert ratio["held_out_psnr"] == pytest.approx((36.0 + 18.0) / 2)
    assert ratio["training_psnr_grade_matched"] == pytest.approx((40.0 + 20.0) / 2)
    with pytest.raises(ValueError, match="share no family"):
        wording_ratio(EvaluationResult({"night": held_out.families["night"]}), training)


def test_evaluate_records_grades():
    photo = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))

    result = evaluate(lambda image, instruction, seed: image, [photo], ["brighter"], split="eval")
    rebuilt = EvaluationResult.from_dict(result.to_dict())

    family = result.families["brighter"]
    assert sum(family.samples_by_grade.values()) == family.samples
    assert set(family.samples_by_grade) == {"slight", "normal", "strong"}
    # Doing nothing matches a slight brightening better than a strong one.
    assert family.psnr_by_grade["slight"] > family.psnr_by_grade["strong"]
    assert rebuilt.families["brighter"].psnr_by_grade == pytest.approx(family.psnr_by_grade, abs=1e-4)
