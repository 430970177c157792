"""Segmentation predictions on new images: index masks, colour masks and overlays (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from fcnlab.inference import Predictor, to_image_tensor
from fcnlab.inference.options import PredictOptions
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
) -> list[Path]:
    """Label every image with ``predictor`` and write its three PNGs; return their paths."""
    assert predictor.metadata is not None
    out.mkdir(parents=True, exist_ok=True)
    palette = predictor.metadata.palette_array()
    written: list[Path] = []
    for path in images:
        image = to_image_tensor(path)
        prediction = predictor.predict(image)
        written += write_prediction(
            image, prediction.labels, palette, out, path.stem, options.alpha
        )
        console.print(f"{path} -> {out / path.stem}_{{mask,color,overlay}}.png", markup=False)
    console.print(f"wrote {len(written)} PNGs for {len(images)} images to {out}", markup=False)
    return written
