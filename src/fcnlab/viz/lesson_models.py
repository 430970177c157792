"""Section 6 of the lesson: from a classifier to a dense predictor, with fcnlab's own models.

The models are tiny (VGG16 at 1/16 width) and untrained: training even these on a shared CPU
would not fit the page's time budget. The pictures therefore show the mechanics (the shapes of
the maps, the exact classifier/FCN equivalence, how fine each FCN's output can be), not learned
recognition, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from fcnlab.data import Shapes
from fcnlab.models import build_model
from fcnlab.models.classifier import build_classifier, classifier_as_fcn
from fcnlab.viz.colours import colorize

WIDTH = 1 / 16
TRAIN_SIZE = 96  # the classifier's input: pool5 is 3x3, so fc6 is a 3x3 convolution
FC6_KERNEL = 3
IMAGE_SIZE = 224
NUM_CLASSES = 4  # background, disk, square, triangle
SEED = 0


def shapes_sample(size: int = IMAGE_SIZE, index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Image (3, H, W) in [0, 1] and mask (H, W) of Shapes sample ``index`` (val split)."""
    image, mask = Shapes(num_images=index + 1, size=size, num_classes=NUM_CLASSES, split="val")[
        index
    ]
    return image, mask


@dataclass(frozen=True)
class DensePredictionExample:
    """A classifier, its convolutionalized twin, and the twin's heat map on a larger image."""

    classifier_logits: torch.Tensor  # (K,): the classifier on a TRAIN_SIZE image
    fcn_logits: torch.Tensor  # (K,): the convolutional twin on the same image, a 1x1 map
    image: torch.Tensor  # (3, H, W), larger than TRAIN_SIZE
    heat_map: torch.Tensor  # (K, h, w): class scores, one per TRAIN_SIZE window, stride 32


def dense_prediction_example(image_size: int = IMAGE_SIZE) -> DensePredictionExample:
    """Convolutionalize an (untrained) VGG16 classifier with ``classifier_as_fcn``.

    The classifier's own weights, in torchvision's layout, are loaded into the fully
    convolutional version: on a ``TRAIN_SIZE`` image both give the same logits; on an
    ``image_size`` image the FCN gives a (image_size/32 - FC6_KERNEL + 1)^2 map of them.
    """
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        classifier = build_classifier(
            "vgg16", NUM_CLASSES, width=WIDTH, fc6_kernel=FC6_KERNEL
        ).eval()
    fcn = classifier_as_fcn(
        "vgg16", classifier.state_dict(), NUM_CLASSES, width=WIDTH, fc6_kernel=FC6_KERNEL
    ).eval()
    image, _ = shapes_sample(image_size)
    crop = image[None, :, :TRAIN_SIZE, :TRAIN_SIZE]
    with torch.no_grad():
        logits = classifier(crop)[0]
        twin = fcn(crop)[0]
        heat_map = fcn(image[None])[0]
    if twin.shape[-2:] != (1, 1):
        raise RuntimeError(f"the convolutional twin gave a {tuple(twin.shape[-2:])} map, not 1x1")
    return DensePredictionExample(logits, twin[:, 0, 0], image, heat_map)


@dataclass(frozen=True)
class FCNComparison:
    """Untrained FCN-32s and FCN-8s (random score layers) on one Shapes image."""

    image: torch.Tensor  # (3, H, W)
    mask: torch.Tensor  # (H, W) ground truth
    scores: dict[str, torch.Tensor]  # name -> (K, H, W) class scores at the input's size
    output_strides: dict[str, int]  # name -> stride of the coarsest scores fused


def _randomize_scores(model: nn.Module) -> None:
    """The score layers start at zero (a constant prediction); random ones show the resolution."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and "score" in name:
            nn.init.normal_(module.weight, std=1.0)


def fcn_comparison(
    image_size: int = 128, names: tuple[str, ...] = ("fcn32s", "fcn8s")
) -> FCNComparison:
    """``build_model(name)`` for each name (tiny, untrained), predicting one Shapes image."""
    image, mask = shapes_sample(image_size)
    scores, strides = {}, {}
    for name in names:
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            model = build_model(
                name, num_classes=NUM_CLASSES, encoder_options={"width": WIDTH}
            ).eval()
            _randomize_scores(model)
        with torch.no_grad():
            scores[name] = model(image[None])[0]
        strides[name] = model.decoder.output_stride
    return FCNComparison(image, mask, scores, strides)


def _image_axis(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_dense_prediction() -> Figure:
    """Section 6a: the image with one classifier window, and the class-score heat maps."""
    example = dense_prediction_example()
    classes = Shapes(num_images=1, num_classes=NUM_CLASSES).classes
    fig = Figure(figsize=(16, 3.8), layout="constrained")
    axes = fig.subplots(1, 1 + NUM_CLASSES, width_ratios=[1.25] + [1] * NUM_CLASSES)
    axes[0].imshow(example.image.permute(1, 2, 0).numpy())
    axes[0].add_patch(
        Rectangle((-0.5, -0.5), TRAIN_SIZE, TRAIN_SIZE, fill=False, edgecolor="red", linewidth=2)
    )
    size = example.image.shape[-1]
    _image_axis(axes[0], f"{size}x{size} image\nred: one {TRAIN_SIZE}x{TRAIN_SIZE} window")
    h, w = example.heat_map.shape[-2:]
    for ax, name, scores in zip(axes[1:], classes, example.heat_map, strict=True):
        shown = ax.imshow(scores.numpy(), cmap="magma")
        fig.colorbar(shown, ax=ax, shrink=0.8)
        _image_axis(ax, f"'{name}' scores\n{h}x{w} map")
    gap = float((example.classifier_logits - example.fcn_logits).abs().max())
    fig.suptitle(
        "An untrained classifier (VGG16 at 1/16 width) convolutionalized: one score per window, "
        f"stride 32;\non a {TRAIN_SIZE}x{TRAIN_SIZE} image it equals the classifier "
        f"(max difference {gap:.1e})"
    )
    return fig


def plot_fcn_comparison() -> Figure:
    """Section 6b: ground truth, and one class's scores from untrained FCN-32s and FCN-8s.

    Untrained scores barely differ between classes, so their argmax is one colour; the score
    map itself shows what the architecture allows: 32x32 blobs for FCN-32s, finer for FCN-8s.
    """
    example = fcn_comparison()
    shapes = Shapes(num_images=1, num_classes=NUM_CLASSES)
    fig = Figure(figsize=(14, 3.8), layout="constrained")
    axes = fig.subplots(1, 2 + len(example.scores))
    axes[0].imshow(example.image.permute(1, 2, 0).numpy())
    _image_axis(axes[0], "Shapes image")
    axes[1].imshow(colorize(example.mask.numpy(), shapes.palette))
    _image_axis(axes[1], "ground truth")
    for ax, (name, scores) in zip(axes[2:], example.scores.items(), strict=True):
        shown = ax.imshow(scores[1].numpy(), cmap="magma", interpolation="nearest")
        fig.colorbar(shown, ax=ax, shrink=0.8)
        stride = example.output_strides[name]
        _image_axis(ax, f"{name}: '{shapes.classes[1]}' score, stride {stride}")
    fig.suptitle(
        "Untrained FCNs (random score layers): the score maps show how fine each output can be"
    )
    return fig
