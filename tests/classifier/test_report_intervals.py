"""The 95% bootstrap intervals of a held-out report's macro figures."""

from __future__ import annotations

import numpy as np

from services.classifier.training import macro_intervals, tag_metrics

CLASSES = ["billing", "delay", "staff_conduct"]


def _one_hot(labels: list[str]) -> np.ndarray:
    return np.asarray([[1.0 if c == label else 0.0 for c in CLASSES] for label in labels])


def _sample(copies: int) -> tuple[list[str], np.ndarray]:
    truth = ["billing"] * 8 + ["delay"] * 6 + ["staff_conduct"] * 4
    called = (
        ["billing"] * 7
        + ["delay"]
        + ["delay"] * 5
        + ["billing"]
        + ["staff_conduct"] * 2
        + ["billing"] * 2
    )
    return truth * copies, _one_hot(called * copies)


def test_a_perfect_model_has_no_spread() -> None:
    truth = ["billing", "delay", "staff_conduct"] * 5
    assert macro_intervals(truth, _one_hot(truth), CLASSES) == {
        "macro_recall": [1.0, 1.0],
        "macro_f1": [1.0, 1.0],
    }


def test_the_interval_holds_the_figure_and_narrows_with_more_examples() -> None:
    small_truth, small_p = _sample(1)
    large_truth, large_p = _sample(20)
    point = tag_metrics(small_truth, small_p, CLASSES)
    small = macro_intervals(small_truth, small_p, CLASSES)
    large = macro_intervals(large_truth, large_p, CLASSES)
    for name in ("macro_recall", "macro_f1"):
        assert small[name][0] < point[name] < small[name][1]
        assert large[name][0] < point[name] < large[name][1]
        assert large[name][1] - large[name][0] < (small[name][1] - small[name][0]) / 2


def test_the_same_seed_gives_the_same_interval() -> None:
    truth, p = _sample(2)
    assert macro_intervals(truth, p, CLASSES, seed=4) == macro_intervals(truth, p, CLASSES, seed=4)
