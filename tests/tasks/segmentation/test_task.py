"""The segmentation task's collate: images and masks of different sizes in one batch are padded
to the largest (masks with the ignore index), so any evaluation batch size gives the scores of
batch size 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.config import Config
from fcnlab.engine.loader import eval_loader
from fcnlab.runtime.distributed import DistInfo
from fcnlab.tasks import EvalSettings, get_task, run_evaluation
from fcnlab.tasks.segmentation.metrics import confusion_matrix


def two_size_set(ignore_index: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Five (image, mask) samples of two sizes, in alternating order; some pixels ignored."""
    generator = torch.Generator().manual_seed(0)
    samples = []
    for k in range(5):
        height, width = (20, 28) if k % 2 else (32, 16)
        image = torch.rand(3, height, width, generator=generator)
        mask = torch.randint(0, 3, (height, width), generator=generator)
        mask[:3] = ignore_index
        samples.append((image, mask))
    return samples


def test_batches_of_two_sizes_score_as_one_image_at_a_time() -> None:
    config = Config()
    config.data.ignore_index = 7
    task = get_task("segmentation")
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 1)  # pointwise: padding cannot reach a pixel it does not cover
    samples = two_size_set(config.data.ignore_index)
    results = {}
    for batch_size in (1, 2, 5):
        loader = eval_loader(samples, DistInfo(), batch_size, 0, False, task.collate(7))
        evaluator = task.evaluator(3, config, ["a", "b", "c"])
        infer = task.inference(model, EvalSettings())
        results[batch_size] = run_evaluation(model, loader, evaluator, infer)
    with torch.no_grad():
        expected = sum(
            confusion_matrix(model(image[None]).argmax(1), mask[None], 3, 7)
            for image, mask in samples
        )
    for result in results.values():
        assert result.confusion == expected.tolist()
        assert result.mean_iou == results[1].mean_iou


def test_the_collate_pads_images_with_zeros_and_masks_with_the_ignore_index() -> None:
    samples = two_size_set(ignore_index=255)[:2]
    images, masks = get_task("segmentation").collate(255)(samples)
    assert images.shape == (2, 3, 32, 28) and masks.shape == (2, 32, 28)
    for (image, mask), padded, padded_mask in zip(samples, images, masks, strict=True):
        height, width = mask.shape
        assert torch.equal(padded[:, :height, :width], image)
        assert torch.equal(padded_mask[:height, :width], mask)
        assert padded[:, height:].abs().sum() == 0 and padded[:, :, width:].abs().sum() == 0
        assert (padded_mask[height:] == 255).all() and (padded_mask[:, width:] == 255).all()
    same_size = two_size_set(ignore_index=255)[::2]
    images, masks = get_task("segmentation").collate()(same_size)
    assert torch.equal(images, torch.stack([image for image, _ in same_size]))


def test_a_mask_of_another_size_than_its_image_is_named() -> None:
    image, mask = two_size_set(ignore_index=255)[0]
    with pytest.raises(ValueError, match=r"got \(3, 32, 16\) with \(32, 16\), \(3, 20, 28\) with"):
        get_task("segmentation").collate()([(image, mask), (torch.rand(3, 20, 28), mask)])
