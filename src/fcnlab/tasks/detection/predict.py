"""Detections on new images: boxes drawn with class names and scores (``NAME_boxes.png``) and
all detections in COCO's format (``detections.json``).

``detections.json`` holds "images" (id, file_name, height, width), "categories" (id = label + 1,
name) and "annotations", COCO result entries (image_id, category_id, bbox [x, y, w, h] in
pixels, score) with an "id" each, so that pycocotools reads the file with ``COCO(path)`` and the
list with ``COCO.loadRes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from fcnlab.data.transforms import normalize
from fcnlab.inference import ModelMetadata
from fcnlab.runtime.console import Bars, print_literal
from fcnlab.tasks.base import Predictions, readable_images
from fcnlab.tasks.detection.coco_eval import detections_to_coco
from fcnlab.tasks.detection.evaluate import detect
from fcnlab.viz.boxes import draw_detections


def write_detections(
    model: nn.Module,
    metadata: ModelMetadata,
    images: Sequence[Path],
    out: Path,
    device: torch.device,
    score_threshold: float,
    console: Console,
    bars: Bars,
) -> Predictions:
    """Draw each readable image's boxes (``NAME_boxes.png``) and write all detections as
    COCO-format results (``detections.json``, image ids in the order written); images that
    cannot be read are skipped and listed in the result."""
    model.to(device).eval()
    out.mkdir(parents=True, exist_ok=True)
    palette = metadata.palette_array()
    entries, listed, result = [], [], Predictions()
    for path, image in readable_images(bars.track(images, "predicting"), result.unreadable):
        image_id = len(listed)
        batch = normalize(image[None], metadata.mean, metadata.std)
        found = detect(model, batch, score_threshold=score_threshold)[0]
        drawn = draw_detections(
            image, found["boxes"], found["labels"], found["scores"], metadata.classes, palette
        )
        drawn.save(out / f"{path.stem}_boxes.png")
        result.written.append(out / f"{path.stem}_boxes.png")
        listed.append(
            {"id": image_id, "file_name": str(path), "height": image.shape[1],
             "width": image.shape[2]}
        )  # fmt: skip
        entries += detections_to_coco([found], [image_id])
        print_literal(
            console, f"{path} -> {out / path.stem}_boxes.png ({len(found['scores'])} boxes)"
        )
    result.written.append(
        write_coco_results(out / "detections.json", listed, entries, metadata.classes)
    )
    return result


def write_coco_results(
    path: Path,
    images: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    classes: Sequence[str],
) -> Path:
    """``path``: COCO result ``entries`` in a file that pycocotools reads with ``COCO(path)``:
    {"images", "categories" (id = label + 1, name), "annotations" (the entries, given an "id"
    from 1 in order)}."""
    annotations = [{**entry, "id": k + 1} for k, entry in enumerate(entries)]
    results = {
        "images": images,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(classes)],
        "annotations": annotations,
    }
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path
