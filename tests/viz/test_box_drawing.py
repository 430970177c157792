from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.tasks.detection.coco_eval import RECALL_POINTS, coco_evaluate
from fcnlab.viz.boxes import (
    LEGIBLE_SIDE,
    default_palette,
    draw_detections,
    plot_detections,
    plot_pr_curves,
)
from fcnlab.viz.plots import plot_curves, save_figure

PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)


def outline(
    shape: tuple[int, int], box: tuple[int, int, int, int], colour: list[int]
) -> np.ndarray:
    """A black (H, W, 3) image with the one-pixel outline of the pixels x1 <= x < x2,
    y1 <= y < y2 drawn by hand."""
    x1, y1, x2, y2 = box
    expected = np.zeros((*shape, 3), dtype=np.uint8)
    expected[y1:y2, [x1, x2 - 1]] = colour
    expected[[y1, y2 - 1], x1:x2] = colour
    return expected


def test_box_outline_covers_the_box_edges_exactly() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    drawn = draw_detections(
        image, torch.tensor([[2.0, 3.0, 10.0, 12.0]]), [1], palette=PALETTE, line_width=1,
        show_text=False,
    )  # fmt: skip
    assert isinstance(drawn, Image.Image) and drawn.size == (30, 20)
    np.testing.assert_array_equal(np.asarray(drawn), outline((20, 30), (2, 3, 10, 12), [0, 255, 0]))
    assert not image.any()  # the input is left alone
    # A PIL input, a degenerate (zero-width) box skipped.
    pil = Image.fromarray(image)
    drawn = draw_detections(
        pil, [[5, 5, 9, 8], [4, 4, 4, 9]], [2, 0], palette=PALETTE, line_width=1, show_text=False
    )
    np.testing.assert_array_equal(np.asarray(drawn), outline((20, 30), (5, 5, 9, 8), [0, 0, 255]))
    # Drawn twice as large: the image repeated 2 x 2, the box's pixels x1 <= x < x2 with it.
    large = draw_detections(
        image, [[2, 3, 10, 12]], [1], palette=PALETTE, line_width=1, show_text=False, scale=2
    )
    np.testing.assert_array_equal(np.asarray(large), outline((40, 60), (4, 6, 20, 24), [0, 255, 0]))
    # A float (3, H, W) image in [0, 1] is converted as fcnlab.viz.colours.to_rgb does.
    grey = draw_detections(torch.full((3, 4, 4), 0.5), [], [], show_text=False)
    assert np.asarray(grey).tolist() == [[[128] * 3] * 4] * 4


def test_captions_sit_above_the_box_or_inside_at_the_top() -> None:
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    box = torch.tensor([[20.0, 30.0, 70.0, 55.0]])
    drawn = np.asarray(draw_detections(image, box, [0], [0.87], ["square"], PALETTE))
    above = drawn[:30]  # the tab: filled with the class colour, the text in black or white
    red = (above == [255, 0, 0]).all(axis=-1)
    rows, cols = np.nonzero(red)
    assert red.sum() > 50 and rows.max() == 29 and cols.min() == 20
    plain = np.asarray(draw_detections(image, box, [0], palette=PALETTE))  # caption "0"
    narrower = (plain[:30] == [255, 0, 0]).all(axis=-1)
    assert np.nonzero(narrower)[1].max() < cols.max()  # "square 0.87" is wider than "0"
    top = np.asarray(draw_detections(image, [[10, 0, 50, 40]], [1], None, ["a", "disk"], PALETTE))
    green = (top == [0, 255, 0]).all(axis=-1)
    assert green[1:6, 12:20].any()  # the tab inside, under the top edge
    default = np.asarray(draw_detections(image, box, [4], show_text=False))
    assert (default[30, 20] == default_palette(5)[4]).all()


def test_draw_detections_errors() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(
        ValueError, match="one label \\(and score\\) per box, got 1 boxes, 2 labels"
    ):
        draw_detections(image, [[0, 0, 4, 4]], [0, 1])
    with pytest.raises(ValueError, match="do not all index the palette's 3 colours"):
        draw_detections(image, [[0, 0, 4, 4]], [3], palette=PALETTE)
    with pytest.raises(ValueError, match="label 1 has no name among 1 class names"):
        draw_detections(image, [[0, 0, 4, 4]], [1], class_names=["a"], palette=PALETTE)


def test_detections_figure_draws_ground_truth_and_prediction(tmp_path: Path) -> None:
    images = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    targets = [
        {"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]), "labels": torch.tensor([0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    predictions = [
        {"boxes": torch.tensor([[2.0, 1.0, 9.0, 9.0]]), "labels": torch.tensor([2]),
         "scores": torch.tensor([0.5])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
         "scores": torch.zeros(0)},
    ]  # fmt: skip
    names = ["disk", "square", "ring"]
    fig = plot_detections(images, targets, predictions, names, PALETTE)
    assert len(fig.axes) == 4
    shown = fig.axes[1].images[0].get_array()
    # 16 px high: drawn 16 times as large, to LEGIBLE_SIDE = 256 pixels.
    expected = draw_detections(
        images[0], predictions[0]["boxes"], [2], [0.5], names, PALETTE, scale=16
    )
    assert LEGIBLE_SIDE == 256
    np.testing.assert_array_equal(shown, np.asarray(expected))
    assert [ax.get_title() for ax in fig.axes[2:]] == ["ground truth (0)", "prediction (0)"]
    save_figure(fig, tmp_path / "detections.png")
    with pytest.raises(ValueError, match="need as many images, targets and predictions"):
        plot_detections(images, targets[:1], predictions, names)


def test_pr_curves_per_class_and_mean_integrate_to_cocos_ap50(tmp_path: Path) -> None:
    records = [
        {"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0]]),
         "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[0.0, 0.0, 50.0, 50.0]]), "labels": torch.tensor([1])},
    ]  # fmt: skip
    detections = [
        {"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0], [400.0, 0.0, 450.0, 50.0]]),
         "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[0.0, 0.0, 50.0, 50.0]]), "scores": torch.tensor([0.9]),
         "labels": torch.tensor([1])},
    ]  # fmt: skip
    evaluation = coco_evaluate(records, detections, 3)
    names = ["disk", "square", "ring"]
    fig = plot_pr_curves(evaluation.pr_curves(0.5), names, RECALL_POINTS)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["disk (0.505)", "square (1.000)", "mean (0.752)"]  # ring: no ground truth
    disk, _, mean = ax.lines
    np.testing.assert_allclose(disk.get_ydata(), (RECALL_POINTS <= 0.5).astype(float), atol=1e-12)
    np.testing.assert_array_equal(disk.get_xdata(), RECALL_POINTS)
    assert np.mean(mean.get_ydata()) == pytest.approx(evaluation.stats["AP50"])
    assert save_figure(fig, tmp_path / "pr_curve.png").is_file()
    many = plot_pr_curves(np.ones((101, 30)), [str(k) for k in range(30)])
    assert [t.get_text() for t in many.axes[0].get_legend().get_texts()] == ["mean (1.000)"]
    with pytest.raises(ValueError, match="K = 2 classes, got shape \\(101, 3\\)"):
        plot_pr_curves(evaluation.pr_curves(0.5), names[:2])


def test_curves_plot_the_given_detection_keys() -> None:
    records = [{"kind": "train", "stage": 0, "step": s, "loss": 1.0 / s, "lr": 0.1} for s in
               range(1, 9)]  # fmt: skip
    records += [
        {"kind": "eval", "task": "detection", "stage": 0, "step": 4, "AP": 0.2, "AP50": 0.5},
        {"kind": "eval", "task": "detection", "stage": 0, "step": 8, "AP": None, "AP50": 0.7},
    ]
    eval_ax = plot_curves(records, ("AP", "AP50")).axes[2]
    scores = [line for line in eval_ax.lines if line.get_linestyle() == "-"]  # not the stages
    assert [line.get_label() for line in scores] == ["AP", "AP50"]
    assert list(scores[0].get_xdata()) == [4]  # null (NaN) AP left out
    assert list(scores[1].get_ydata()) == [0.5, 0.7]
