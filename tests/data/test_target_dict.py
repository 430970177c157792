from __future__ import annotations

import pytest
import torch

from fcnlab.data import make_target
from fcnlab.data.io import DataFormatError
from fcnlab.data.targets import check_boxes, select_instances


def test_make_target_types_and_default_flags() -> None:
    target = make_target([[1, 2, 3, 4]], [5], image_id=9, orig_size=(6, 8))
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (1, 4)
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [5]
    assert target["iscrowd"].tolist() == [0] and target["difficult"].tolist() == [0]
    assert target["iscrowd"].dtype == target["difficult"].dtype == torch.int64
    assert target["image_id"] == 9 and target["orig_size"] == target["image_size"] == (6, 8)
    empty = make_target([], [], 0, (4, 4))
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_select_instances_indexes_every_per_instance_field() -> None:
    target = make_target([[0, 0, 1, 1], [1, 1, 2, 2]], [3, 4], 1, (2, 2), [1, 0], [0, 1])
    picked = select_instances(target, torch.tensor([False, True]))
    assert picked["boxes"].tolist() == [[1.0, 1.0, 2.0, 2.0]] and picked["labels"].tolist() == [4]
    assert picked["iscrowd"].tolist() == [0] and picked["difficult"].tolist() == [1]
    assert picked["orig_size"] == (2, 2) and len(target["labels"]) == 2


def test_check_boxes_clips_overhang_and_drops_degenerate_boxes() -> None:
    boxes = torch.tensor(
        [[-0.5, 0.0, 10.0, 8.0], [2.0, 3.0, 2.0, 5.0], [1.0, 1.0, 10.8, 8.9], [0, 0, 0, 0]]
    )
    clipped, keep = check_boxes(boxes, (8, 10), "a.json", ["a", "b", "c", "d"])
    assert clipped.dtype == torch.float32
    assert clipped.tolist() == [[0, 0, 10, 8], [2, 3, 2, 5], [1, 1, 10, 8], [0, 0, 0, 0]]
    assert keep.tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    ("box", "problem"),
    [
        ([5.0, 1.0, 3.0, 4.0], "negative width or height"),
        ([1.0, 4.0, 3.0, 2.0], "negative width or height"),
        ([1.0, 1.0, 12.0, 4.0], r"reaches outside the 8x10 image \(height x width\)"),
        ([-2.0, 1.0, 3.0, 4.0], "reaches outside the 8x10 image"),
        ([1.0, float("nan"), 3.0, 4.0], "is not finite"),
    ],
)
def test_check_boxes_names_the_file_and_annotation(box: list[float], problem: str) -> None:
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], box])
    with pytest.raises(DataFormatError, match=rf"^x\.xml: object 2 \('dog'\): box .* {problem}"):
        check_boxes(boxes, (8, 10), "x.xml", ["object 1 ('cat')", "object 2 ('dog')"])
