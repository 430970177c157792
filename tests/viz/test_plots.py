from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from fcnlab.viz.colours import IGNORE_COLOR, colorize, overlay, to_rgb
from fcnlab.viz.plots import plot_confusion, plot_curves, plot_overlays, save_figure

PALETTE = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0], [10, 20, 30]], dtype=np.uint8)
MASK = torch.tensor([[0, 1, 2], [3, 255, 1]])


def test_colorize_maps_each_index_to_its_palette_colour() -> None:
    rgb = colorize(MASK, PALETTE)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    expected = [
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]],
        [[10, 20, 30], list(IGNORE_COLOR), [128, 0, 0]],
    ]
    assert rgb.tolist() == expected
    assert colorize(MASK.numpy(), PALETTE.tolist(), ignore_color=(1, 2, 3))[1, 1].tolist() == [
        1,
        2,
        3,
    ]
    with pytest.raises(ValueError, match="mask has values 4, 7 outside the palette's 4 colours"):
        colorize(torch.tensor([[4, 7, 255]]), PALETTE)
    with pytest.raises(ValueError, match=r"palette must be \(K, 3\)"):
        colorize(MASK, PALETTE[:, :2])


def test_to_rgb_and_overlay_endpoints() -> None:
    image = torch.rand(3, 2, 3, generator=torch.Generator().manual_seed(0))
    rgb = to_rgb(image)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.round(image.permute(1, 2, 0).numpy() * 255))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    normalised = (image - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert np.abs(to_rgb(normalised, mean, std).astype(int) - rgb).max() <= 1

    np.testing.assert_array_equal(overlay(image, MASK, PALETTE, alpha=0.0), rgb)
    full = overlay(image, MASK, PALETTE, alpha=1.0)
    counted = (MASK != 255).numpy()
    np.testing.assert_array_equal(full[counted], colorize(MASK, PALETTE)[counted])
    np.testing.assert_array_equal(full[~counted], rgb[~counted])  # ignored pixels show the image
    half = overlay(rgb, MASK, PALETTE, alpha=0.5)
    expected = np.round(0.5 * rgb[0, 1] + 0.5 * PALETTE[1])
    np.testing.assert_array_equal(half[0, 1], expected)
    with pytest.raises(ValueError, match="image is"):
        overlay(image, MASK[:, :2], PALETTE)


def assert_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as png:
        assert png.format == "PNG"
        png.load()
        return png.size


def test_curves_figure_with_stage_boundaries(tmp_path: Path) -> None:
    records = [
        {"step": s, "stage": "decoder" if s < 6 else "finetune", "loss": 2 / s, "lr": 0.01}
        for s in range(1, 11)
    ]
    records += [
        {"step": 5, "stage": "decoder", "mean_iou": 0.3, "pixel_accuracy": 0.7},
        {"step": 10, "stage": "finetune", "mean_iou": 0.5, "pixel_accuracy": 0.8},
    ]
    fig = plot_curves(records, ("mean_iou", "pixel_accuracy"))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    loss_ax, _, eval_ax = fig.axes
    boundaries = sorted(
        {line.get_xdata()[0] for line in loss_ax.lines if line.get_linestyle() == "--"}
    )
    assert boundaries == [1, 6]
    assert [t.get_text() for t in loss_ax.texts] == ["decoder", "finetune"]
    assert [line.get_label() for line in eval_ax.lines if line.get_linestyle() == "-"] == [
        "mean_iou",
        "pixel_accuracy",
    ]
    assert list(eval_ax.lines[0].get_ydata()) == [0.3, 0.5]
    path = save_figure(fig, tmp_path / "run" / "curves.png")
    assert path == tmp_path / "run" / "curves.png"
    assert assert_png(path) == (800, 700)
    assert sorted(p.name for p in path.parent.iterdir()) == ["curves.png"]  # no temporary left

    # the engine's records: 0-based stage indices, "kind" keys, null for a missing score
    engine = [
        {"kind": "train", "stage": s // 4, "step": s, "loss": 1.0, "lr": 0.1} for s in range(8)
    ]
    engine.append({"kind": "eval", "stage": 1, "step": 7, "mean_iou": None, "pixel_accuracy": 0.5})
    assert [t.get_text() for t in plot_curves(engine).axes[0].texts] == ["stage 1", "stage 2"]
    explicit = plot_curves(records[:10], stage_boundaries=[3, (7, "third")])
    assert [t.get_text() for t in explicit.axes[0].texts] == ["third"]
    with pytest.raises(ValueError, match="record 0 has no 'step'"):
        plot_curves([{"loss": 1.0}])


def dashed_steps(fig: Figure) -> list[float]:
    return sorted(
        {line.get_xdata()[0] for line in fig.axes[0].lines if line.get_linestyle() == "--"}
    )


def test_each_stage_is_marked_at_its_first_step_not_its_first_logged_one() -> None:
    # Logged every 5 steps and at each stage's end: stage 1 is steps 1-8, stage 2 steps 9-13.
    logged = [{"kind": "train", "stage": 0 if s <= 8 else 1, "step": s, "loss": 1.0, "lr": 0.1}
              for s in (5, 8, 10, 13)]  # fmt: skip
    logged.append({"kind": "eval", "stage": 0, "step": 8, "mean_iou": 0.4})
    starts = [{"kind": "stage", "stage": 0, "name": "decoder", "step": 1},
              {"kind": "stage", "stage": 1, "name": "fine-tune", "step": 9}]  # fmt: skip
    assert dashed_steps(plot_curves(logged + starts, ("mean_iou",))) == [1, 9]
    # A log written before the stage records: the step after the previous stage's last record.
    assert dashed_steps(plot_curves(logged, ("mean_iou",))) == [5, 9]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_figures_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        path = save_figure(plot_curves([{"step": 1, "loss": 1.0}]), tmp_path / "curves.png")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_confusion_figure_is_row_normalised(tmp_path: Path) -> None:
    matrix = torch.tensor([[3, 1, 0], [0, 0, 0], [2, 0, 6]])
    fig = plot_confusion(matrix, ["bg", "disk", "square"])
    ax = fig.axes[0]
    rates = ax.images[0].get_array()
    np.testing.assert_allclose(rates[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(rates[2], [0.25, 0.0, 0.75])
    assert np.ma.getmaskarray(rates)[1].all()  # NaN row: drawn blank
    assert [t.get_text() for t in ax.get_yticklabels()] == ["bg", "disk", "square"]
    assert_png(save_figure(fig, tmp_path / "confusion.png"))
    with pytest.raises(ValueError, match="2 class names for a 3-class"):
        plot_confusion(matrix, ["a", "b"])


def test_overlays_figure_rows_and_legend(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 8, 8, generator=gen)
    targets = torch.randint(0, 3, (2, 8, 8), generator=gen)
    targets[0, 0, 0] = 255
    preds = torch.randint(0, 4, (2, 8, 8), generator=gen)
    names = ["bg", "disk", "square", "ring"]
    fig = plot_overlays(images, targets, preds, PALETTE, names)
    assert len(fig.axes) == 6
    np.testing.assert_array_equal(fig.axes[4].images[0].get_array(), colorize(targets[1], PALETTE))
    np.testing.assert_array_equal(fig.axes[5].images[0].get_array(), colorize(preds[1], PALETTE))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [*names, "ignore"]
    path = save_figure(fig, tmp_path / "overlays.png")
    width, height = assert_png(path)
    assert width == 900 and height > 600
    with pytest.raises(ValueError, match="need as many images, targets and predictions"):
        plot_overlays(images, targets[:1], preds, PALETTE)
