"""Segmentation predictions on new images: index masks, colour masks and overlays (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from fcnlab.inference import Predictor
from fcnlab.inference.options import PredictOptions
from fcnlab.runtime.console import Bars, print_literal
from fcnlab.tasks.base import Predictions, readable_images
from fcnlab.viz.colours import colorize, overlay


def index_mask_image(labels: np.ndarray) -> Image.Image:
    """Class indices (H, W) as an 8-bit grey PNG image, or 16-bit past 255."""
    if labels.max(initial=0) <= 255:
        return Image.fromarray(labels.astype(np.uint8))
    return Image.fromarray(labels.astype(np.uint16))


def write_prediction(
    image: torch.Tensor,
    labels: torch.Tensor,
    palette: np.ndarray,
    out: Path,
    stem: str,
    alpha: float,
) -> list[Path]:
    """Write ``stem``'s index mask, colour mask and overlay to ``out``; return their paths."""
    array = labels.numpy()
    paths = [out / f"{stem}_{kind}.png" for kind in ("mask", "color", "overlay")]
    index_mask_image(array).save(paths[0])
    Image.fromarray(colorize(array, palette, ignore_index=None)).save(paths[1])
    Image.fromarray(overlay(image, array, palette, alpha, ignore_index=None)).save(paths[2])
    return paths


def write_segmentations(
    predictor: Predictor,
    images: Sequence[Path],
    out: Path,
    options: PredictOptions,
    console: Console,
    bars: Bars,
) -> Predictions:
    """Label every readable image with ``predictor`` and write its three PNGs; images that
    cannot be read are skipped and listed in the result."""
    assert predictor.metadata is not None
    out.mkdir(parents=True, exist_ok=True)
    palette = predictor.metadata.palette_array()
    result = Predictions()
    predictor.window_progress = bars.counter("windows")
    for path, image in readable_images(bars.track(images, "predicting"), result.unreadable):
        prediction = predictor.predict(image)
        result.written += write_prediction(
            image, prediction.labels, palette, out, path.stem, options.alpha
        )
        print_literal(console, f"{path} -> {out / path.stem}_{{mask,color,overlay}}.png")
    done = len(images) - len(result.unreadable)
    print_literal(console, f"wrote {len(result.written)} PNGs for {done} images to {out}")
    return result
