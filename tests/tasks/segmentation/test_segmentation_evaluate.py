"""Segmentation ``evaluate`` with the model on a device: the confusion matrix of the CPU's
predictions, counted by hand."""

from __future__ import annotations

import pytest
import torch
from helpers.devices import DEVICES
from helpers.tinyseg import Squares, TinySegmenter
from torch.utils.data import DataLoader

from fcnlab.tasks.segmentation.evaluate import evaluate


@pytest.mark.parametrize("device", DEVICES)
def test_a_model_on_the_device_scores_its_cpu_predictions(device: str) -> None:
    torch.manual_seed(126)  # random weights that predict all three classes, none near a tie
    model = TinySegmenter().eval()
    data = Squares(6, flip=False)
    images = torch.stack([data[i][0] for i in range(6)])
    masks = torch.stack([data[i][1] for i in range(6)])
    with torch.no_grad():
        logits = model(images)
    top2 = logits.topk(2, dim=1).values
    # No pixel near a tie, so the device's own rounding cannot change a prediction.
    assert (top2[:, 0] - top2[:, 1]).min() > 1e-4
    expected = torch.bincount(3 * masks.flatten() + logits.argmax(1).flatten(), minlength=9)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # float32 convolutions
        result = evaluate(model.to(device), DataLoader(data, batch_size=4), num_classes=3)
    assert result.confusion == expected.view(3, 3).tolist()
    assert {p.device.type for p in model.parameters()} == {device}
    # Every class is predicted somewhere: the matrix is not a column of one class.
    assert all(sum(column) > 0 for column in zip(*result.confusion, strict=True))
