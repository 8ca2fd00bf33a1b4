"""Pure parts of fine-tuning and calibration, and the compact weight file."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from services.classifier.finetune import (
    build_network,
    class_weights,
    length_batches,
    load_weights,
    save_weights,
)
from services.classifier.model import softmax
from services.classifier.training import calibration_error, fit_temperature


def test_length_batches_cover_every_example_once_with_similar_lengths() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(5, 128) for _ in range(1000)]
    batches = length_batches(lengths, batch_size=16, rng=random.Random(2))
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(len(batch) <= 16 for batch in batches)
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 20  # random batches of 16 would spread over about 100 tokens
    again = length_batches(lengths, batch_size=16, rng=random.Random(2))
    assert again == batches


def test_class_weights_lift_thin_classes() -> None:
    weights = class_weights([0] * 100 + [1] * 25 + [2] * 4, 4, 0.5)
    assert weights.tolist() == [1.0, 2.0, 5.0, 1.0]


def test_temperature_scaling_recovers_an_overconfident_model() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 4000)
    true_logits = rng.normal(0, 1, (4000, 3)).astype(np.float32)
    true_logits[np.arange(4000), truth] += 1.0
    # Labels drawn from the calibrated probabilities, logits reported three times too sharp.
    probabilities = softmax(true_logits)
    labels = [int(rng.choice(3, p=row)) for row in probabilities]
    overconfident = true_logits * 3
    temperature = fit_temperature(overconfident, labels)
    assert 2.4 < temperature < 3.6
    before = calibration_error(softmax(overconfident), labels)
    after = calibration_error(softmax(overconfident, temperature), labels)
    assert after < before / 2
    assert after < 0.05


def test_calibration_error_of_a_perfectly_calibrated_top_label_is_small() -> None:
    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.5, 1.0, 20000)
    correct = rng.uniform(0, 1, 20000) < confidence
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    truth = np.where(correct, 0, 1)
    assert calibration_error(probabilities, truth.tolist()) < 0.02
    assert calibration_error(probabilities, [1] * 20000) > 0.5


def test_saved_weights_load_back_into_the_network(tmp_path: Path) -> None:
    import torch

    network = build_network()
    with torch.no_grad():
        network.heads["category"].weight.add_(0.5)
    path = tmp_path / "encoder.npz"
    save_weights(network, path)
    assert path.stat().st_size < 15 * 1024 * 1024
    loaded = load_weights(build_network(), path)
    original = network.state_dict()
    for name, value in loaded.state_dict().items():
        scale = float(original[name].abs().max()) or 1.0
        assert float((value - original[name]).abs().max()) <= scale / 127 + 1e-6, name
