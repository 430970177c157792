"""Detection targets: CenterNet's Gaussian heatmaps, FCOS's location assignment, target checks."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.devices import DEVICES
from helpers.fcos_reference import per_image_fcos_targets, random_box_targets

from fcnlab.models.detection.fcos import SIZE_RANGES
from fcnlab.models.detection.targets import (
    BACKGROUND,
    IGNORE,
    centerness_target,
    centernet_targets,
    check_batch,
    check_targets,
    draw_gaussians,
    fcos_batch_targets,
    fcos_locations,
    fcos_targets,
    gaussian_radius,
)

STRIDES = (8, 16, 32, 64, 128)


def centernet_code_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """``gaussian_radius`` as CenterNet's ``utils/image.py`` writes it, line for line."""
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    sq1 = math.sqrt(b1**2 - 4 * a1 * c1)
    r1 = (b1 + sq1) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    sq2 = math.sqrt(b2**2 - 4 * a2 * c2)
    r2 = (b2 + sq2) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    sq3 = math.sqrt(b3**2 - 4 * a3 * c3)
    r3 = (b3 + sq3) / 2
    return min(r1, r2, r3)


def test_gaussian_radius_worked_example() -> None:
    # A 10 x 20 box at IoU 0.7: r1 = (30 + sqrt(900 - 4*200*0.3/1.7)) / 2 = 28.77,
    # r2 = (60 + sqrt(3600 - 16*60)) / 2 = 55.69, r3 = (-42 + sqrt(1764 + 4*2.8*60)) / 2 = 3.678.
    r = gaussian_radius(torch.tensor([10.0]), torch.tensor([20.0]))
    assert float(r) == pytest.approx((-42 + math.sqrt(1764 + 672)) / 2, rel=1e-6)
    assert float(r) == pytest.approx(3.678, abs=1e-3)


def test_gaussian_radius_matches_centernet_code() -> None:
    g = torch.Generator().manual_seed(0)
    h, w = torch.rand(50, generator=g) * 120 + 0.5, torch.rand(50, generator=g) * 120 + 0.5
    for overlap in (0.3, 0.7):
        expected = [
            centernet_code_radius(a, b, overlap)
            for a, b in zip(h.tolist(), w.tolist(), strict=True)
        ]
        torch.testing.assert_close(
            gaussian_radius(h, w, overlap), torch.tensor(expected), rtol=1e-5, atol=1e-4
        )


def test_draw_gaussians_values_window_and_maximum() -> None:
    heat = torch.zeros(2, 9, 9)
    centers = torch.tensor([[4, 4], [5, 4], [1, 1]])
    draw_gaussians(heat, centers, torch.tensor([2, 2, 1]), torch.tensor([0, 0, 1]))
    sigma = 5 / 6  # (2r + 1) / 6
    assert heat[0, 4, 4] == 1 and heat[0, 4, 5] == 1  # both centres, same class, max kept
    assert float(heat[0, 2, 4]) == pytest.approx(math.exp(-4 / (2 * sigma**2)), rel=1e-5)
    assert float(heat[0, 4, 3]) == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-5)
    assert heat[0, 4, 1] == 0 and heat[0, 1, 4] == 0  # beyond radius 2 of both centres
    assert float(heat[1, 0, 0]) == pytest.approx(math.exp(-2 / (2 * 0.5**2)), rel=1e-5)
    assert heat[1].count_nonzero() == 9  # 3x3 window; other class untouched by class 0
    assert heat[1, 4, 4] == 0


def test_centernet_targets_cell_offset_size_and_crowd() -> None:
    target = {
        "boxes": torch.tensor([[10.0, 6.0, 30.0, 22.0], [0.0, 0.0, 40.0, 40.0]]),
        "labels": torch.tensor([2, 0]),
        "iscrowd": torch.tensor([0, 1]),
    }
    made = centernet_targets(target, 3, (10, 12), stride=4)
    # Centre (20, 14) / 4 = (5, 3.5): cell (5, 3), offset (0, 0.5), size (20, 16) / 4.
    assert made["cell"].tolist() == [3 * 12 + 5]
    torch.testing.assert_close(made["offset"], torch.tensor([[0.0, 0.5]]))
    torch.testing.assert_close(made["size"], torch.tensor([[5.0, 4.0]]))
    assert made["heatmap"][2, 3, 5] == 1 and made["heatmap"].eq(1).sum() == 1
    assert made["heatmap"][0].sum() == 0  # the crowd box makes no positive


def test_targets_are_checked() -> None:
    with pytest.raises(ValueError, match=r"target 3 has labels in \[0, 5\]; expected \[0, 3\)"):
        centernet_targets(
            {"boxes": torch.zeros(2, 4), "labels": torch.tensor([0, 5])}, 3, (4, 4), 4, index=3
        )
    with pytest.raises(ValueError, match="2 boxes, 1 labels"):
        centernet_targets({"boxes": torch.zeros(2, 4), "labels": torch.tensor([0])}, 3, (4, 4), 4)


def test_check_batch_wants_one_target_per_image() -> None:
    check_batch([{}, {}], 2)
    with pytest.raises(ValueError, match="got 1 targets for a batch of 2 images"):
        check_batch([{}], 2)


def assign(boxes: list[list[float]], labels: list[int], crowd: list[int] | None = None, **kw):
    """FCOS targets on a 128 x 128 input: P3 16x16, P4 8x8, P5 4x4, P6 2x2, P7 1x1."""
    sizes = [(128 // s or 1, 128 // s or 1) for s in STRIDES]
    points, level = fcos_locations(sizes, STRIDES)
    target = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)}
    if crowd is not None:
        target["iscrowd"] = torch.tensor(crowd)
    made = fcos_targets(target, 3, points, level, STRIDES, SIZE_RANGES, **kw)
    return points, level, made


def positives_at(points, level, made, label: int) -> list[tuple[int, int, int]]:
    """(level, x, y) of the locations assigned class ``label``."""
    where = (made["labels"] == label).nonzero()[:, 0]
    return sorted((int(level[i]), int(points[i, 0]), int(points[i, 1])) for i in where)


def test_locations_sit_at_stride_centres() -> None:
    points, level = fcos_locations([(2, 3), (1, 2)], (8, 16))
    assert points.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12], [8, 8],
                               [24, 8]]  # fmt: skip
    assert level.tolist() == [0] * 6 + [1] * 2


def test_small_box_on_p3_with_and_without_centre_sampling() -> None:
    # Box 40x40 centred at (52, 52). P3 locations x*8+4 inside (32, 72): 36..68, five per axis,
    # all with max(l, t, r, b) <= 36 < 64, so P3; on P4 the largest distance is < 64: none.
    points, level, made = assign([[32.0, 32.0, 72.0, 72.0]], [1], center_radius=None)
    grid = [36, 44, 52, 60, 68]
    assert positives_at(points, level, made, 1) == [(0, x, y) for x in grid for y in grid]
    # Centre sampling, radius 1.5 * 8 = 12: the region (40, 64) holds 44, 52, 60 only.
    points, level, made = assign([[32.0, 32.0, 72.0, 72.0]], [1])
    grid = [44, 52, 60]
    assert positives_at(points, level, made, 1) == [(0, x, y) for x in grid for y in grid]
    centre = int(((points == torch.tensor([52.0, 52.0])).all(1) & (level == 0)).nonzero())
    assert made["ltrb"][centre].tolist() == [20.0, 20.0, 20.0, 20.0]
    assert (made["labels"][made["labels"] != 1] == BACKGROUND).all()


def test_large_box_goes_to_the_level_of_its_reach() -> None:
    # Box (0, 0, 128, 80), centre (64, 40). P3 (radius 12): region (52, 76) x (28, 52) holds
    # x 60, 68 and y 36, 44, where the reach max(l, t, r, b) is >= 68 > 64: none. P4 (radius
    # 24): region (40, 88) x (16, 64) holds x 56, 72 and y 24, 40, 56, reach 72 in [64, 128]:
    # six positives. P5 (radius 48): x 48, 80 and y 16, 48, reach at most 80 < 128: none.
    points, level, made = assign([[0.0, 0.0, 128.0, 80.0]], [0])
    expected = [(1, x, y) for x in (56, 72) for y in (24, 40, 56)]
    assert positives_at(points, level, made, 0) == expected


def test_ambiguous_location_takes_the_smaller_box_and_range_bounds_count() -> None:
    small, large = [40.0, 40.0, 80.0, 80.0], [20.0, 20.0, 100.0, 100.0]
    points, level, made = assign([large, small], [2, 1], center_radius=None)
    p3 = level == 0

    def label_at(x: float, y: float) -> int:
        return int(made["labels"][p3 & (points == torch.tensor([x, y])).all(1)])

    assert label_at(60, 60) == 1  # inside both, both on P3: the smaller box
    assert label_at(36, 60) == 2  # inside the large only, reach exactly 64: P3's bound counts
    assert label_at(28, 60) == BACKGROUND  # reach 72: not P3
    p4 = (level == 1) & (points == torch.tensor([24.0, 56.0])).all(1)
    assert int(made["labels"][p4]) == 2  # the same large box, reach 76, on P4


def test_crowd_boxes_make_no_positives_and_are_ignored() -> None:
    points, _, made = assign(
        [[0.0, 0.0, 64.0, 64.0], [32.0, 32.0, 72.0, 72.0]], [0, 1], crowd=[1, 0]
    )
    inside_crowd = (points < 64).all(1)
    labels = made["labels"]
    assert not (labels == 0).any()
    assert (labels[inside_crowd & (labels != 1)] == IGNORE).all()
    assert (labels[~inside_crowd & (labels != 1)] == BACKGROUND).all()
    assert (labels == 1).sum() == 9


def test_index_names_the_assigned_box_and_minus_one_elsewhere() -> None:
    # The boxes of the ambiguous-location example, plus a crowd box over the top-left corner.
    crowd, large, small = [0, 0, 16, 16], [20, 20, 100, 100], [40, 40, 80, 80]
    points, level, made = assign(
        [crowd, large, small], [0, 2, 1], crowd=[1, 0, 0], center_radius=None
    )
    index = made["index"]
    assert index.dtype == torch.int64 and index.shape == (len(points),)

    def index_at(k: int, x: float, y: float) -> int:
        return int(index[(level == k) & (points == torch.tensor([x, y])).all(1)])

    assert index_at(0, 60, 60) == 2  # inside both, the smaller box (row 2)
    assert index_at(0, 36, 60) == 1  # the large box only (row 1)
    assert index_at(0, 28, 60) == -1  # background
    assert index_at(1, 24, 56) == 1  # the large box on P4
    assert index_at(0, 4, 4) == -1  # inside the crowd box: ignored, never assigned
    # Every location: a box of the same class exactly where there is a positive.
    positive = made["labels"] >= 0
    assert ((index >= 0) == positive).all()
    labels = torch.tensor([0, 2, 1])
    assert (labels[index[positive]] == made["labels"][positive]).all()


def test_no_boxes_means_all_background() -> None:
    points, _, made = assign([], [])
    assert (made["labels"] == BACKGROUND).all() and made["ltrb"].shape == (len(points), 4)
    assert made["index"].dtype == torch.int64 and (made["index"] == -1).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("center_radius", [1.5, None, 2.5])
def test_batch_targets_equal_the_per_image_assignment(center_radius: float | None, device: str):
    # The assignment as written before it was batched, image by image, is the reference: labels,
    # distances and box rows exactly equal, on random batches of 1 to 6 images of two sizes.
    # Seen: positives, ignored locations, box 0 chosen over its copy box 2, an image without boxes.
    seen = torch.zeros(4, dtype=torch.bool)
    for seed in range(24):
        size = (128, 128) if seed % 2 else (100, 61)
        sizes = [(math.ceil(size[0] / s), math.ceil(size[1] / s)) for s in STRIDES]
        points, level = fcos_locations(sizes, STRIDES)
        targets = random_box_targets(seed, 1 + seed % 6, size, num_classes=4)
        boxes, labels, crowd, counts = check_targets(targets, 4)
        made = fcos_batch_targets(
            boxes, labels, crowd, counts, points.to(device), level.to(device), STRIDES,
            SIZE_RANGES, center_radius,
        )  # fmt: skip
        assert made["labels"].device.type == device
        for i, target in enumerate(targets):
            expected = per_image_fcos_targets(
                target, 4, points, level, STRIDES, SIZE_RANGES, center_radius, i
            )
            alone = fcos_targets(target, 4, points, level, STRIDES, SIZE_RANGES, center_radius)
            for key, want in expected.items():
                for found in (made[key][i].cpu(), alone[key]):
                    assert found.dtype == want.dtype and torch.equal(found, want), (seed, i, key)
            index = made["index"][i].cpu()
            # Box 2 is box 0 again: where both may be picked (neither crowd), box 0 must be.
            flags = target["iscrowd"].tolist()
            tie = len(flags) >= 3 and flags[0] == flags[2] == 0 and bool((index == 0).any())
            seen |= torch.tensor([(index >= 0).any(), (made["labels"][i] == IGNORE).any(), tie,
                                  len(target["boxes"]) == 0])  # fmt: skip
    assert seen.all()


def test_batch_targets_of_images_without_boxes() -> None:
    points, level = fcos_locations([(2, 2), (1, 1)], (8, 16))
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    one = {"boxes": torch.tensor([[0.0, 0.0, 16.0, 16.0]]), "labels": torch.tensor([2])}
    for targets in ([empty, empty], [empty, one, empty]):
        boxes, labels, crowd, counts = check_targets(targets, 3)
        made = fcos_batch_targets(boxes, labels, crowd, counts, points, level, (8, 16),
                                  [(0, 64), (64, math.inf)])  # fmt: skip
        assert made["labels"].shape == made["index"].shape == (len(targets), 5)
        for i, target in enumerate(targets):
            labels = made["labels"][i]
            assert labels.tolist() == ([2] * 4 + [-1] if target is one else [BACKGROUND] * 5)
            assert made["index"][i].tolist() == ([0] * 4 + [-1] if target is one else [-1] * 5)
            if target is empty:
                assert torch.equal(made["ltrb"][i], torch.zeros(5, 4))


def test_centerness_hand_worked() -> None:
    ltrb = torch.tensor([[10.0, 5.0, 30.0, 20.0], [4.0, 4.0, 4.0, 4.0]])
    expected = torch.tensor([math.sqrt(10 / 30 * 5 / 20), 1.0])
    torch.testing.assert_close(centerness_target(ltrb), expected)
