"""Instance masks on new images: each instance drawn in its own colour (``NAME_instances.png``),
an instance-id map per image (``NAME_instance_ids.png``) and all instances in COCO's format
(``instances.json``).

``instances.json`` holds "images" (id, file_name, height, width), "categories" (id = label + 1,
name) and "annotations", COCO result entries (image_id, category_id, segmentation, bbox
[x, y, w, h] in pixels, score) with an "id" and the mask's "area" each, so that pycocotools reads
the file with ``COCO(path)``. The masks are COCO RLEs {"size": [height, width], "counts": str} at
the image's stored size. Within an image, the entries come in descending score order, the order
of the instance-id map. To score them with ``COCO.loadRes`` and ``COCOeval(..., "segm")`` drop
their "bbox" first, as detectron2 does: ``loadRes`` takes an entry's area from its box when it
has one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from rich.console import Console
from torch import nn

from fcnlab.data.transforms import normalize
from fcnlab.inference import ModelMetadata
from fcnlab.ops.boxes import clip_boxes, xyxy_to_xywh
from fcnlab.ops.masks import paste_masks_chunks
from fcnlab.runtime.console import Bars, print_literal
from fcnlab.runtime.precision import autocast, model_input
from fcnlab.tasks.base import Predictions, readable_images
from fcnlab.viz.instances import draw_instances, instance_id_map


@torch.no_grad()
def segment_instances(
    model: nn.Module,
    images: torch.Tensor,
    amp: str = "off",
    channels_last: bool = False,
    score_threshold: float = 0.05,
    top_k: int = 100,
) -> list[dict[str, torch.Tensor]]:
    """``model.decode`` of a batch (N, 3, H, W): per image {"boxes" (K, 4) xyxy in the batch's
    pixels, "scores", "labels", "masks" (K, h, w) probabilities at ``model.mask_stride``}, on the
    CPU, in descending score order; the model's mode is left as it was."""
    images = model_input(model, images, channels_last)
    with autocast(images.device, amp):
        outputs = model(images)
    # Decoding in float32 whatever precision the forward ran in.
    outputs = {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}
    found = model.decode(
        outputs, image_size=images.shape[-2:], score_threshold=score_threshold, top_k=top_k
    )
    decoded = []
    for d in found:
        order = torch.argsort(d["scores"].float(), descending=True, stable=True).cpu()
        decoded.append({
            "boxes": d["boxes"].float().cpu()[order], "scores": d["scores"].float().cpu()[order],
            "labels": d["labels"].cpu()[order], "masks": d["masks"].float().cpu()[order],
        })  # fmt: skip
    return decoded


def encode_masks(masks: torch.Tensor) -> list[dict[str, Any]]:
    """COCO RLEs {"size": [H, W], "counts": str} of bool masks (K, H, W), as JSON takes them
    (pycocotools encodes column-major, Fortran order)."""
    stack = np.asfortranarray(masks.numpy().astype(np.uint8).transpose(1, 2, 0))
    encoded = mask_utils.encode(stack) if len(masks) else []
    return [{"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")} for rle in encoded]


def write_instances(
    model: nn.Module,
    metadata: ModelMetadata,
    images: Sequence[Path],
    out: Path,
    device: torch.device,
    score_threshold: float,
    console: Console,
    bars: Bars,
) -> Predictions:
    """Draw each readable image's instances scoring at least ``score_threshold``
    (``NAME_instances.png``), write its instance-id map (``NAME_instance_ids.png``: 16-bit grey,
    0 = background, ``k`` = the image's ``k``-th entry of ``instances.json``, where masks overlap
    the higher-scored instance) and all instances as COCO-format results with RLE masks at the
    image's stored size (``instances.json``, image ids in the order written); images that cannot
    be read are skipped and listed in the result.

    Masks are brought to full size ``PASTE_CHUNK`` at a time and kept as bool, so an image never
    holds all its float masks at full size.
    """
    model.to(device).eval()
    out.mkdir(parents=True, exist_ok=True)
    stride = int(model.mask_stride)
    entries, listed, result = [], [], Predictions()
    for path, image in readable_images(bars.track(images, "predicting"), result.unreadable):
        image_id = len(listed)
        size = tuple(image.shape[-2:])
        batch = normalize(image[None], metadata.mean, metadata.std).to(device)
        found = segment_instances(model, batch, score_threshold=score_threshold)[0]
        chunks = list(paste_masks_chunks(found["masks"], stride, size, size))
        masks = torch.cat(chunks) if chunks else torch.zeros(0, *size, dtype=torch.bool)
        drawn = draw_instances(
            image, masks, found["labels"], found["scores"], metadata.classes, scale=1
        )
        Image.fromarray(drawn).save(out / f"{path.stem}_instances.png")
        ids = instance_id_map(masks, found["scores"]).astype(np.uint16)
        Image.fromarray(ids).save(out / f"{path.stem}_instance_ids.png")
        result.written += [
            out / f"{path.stem}_instances.png",
            out / f"{path.stem}_instance_ids.png",
        ]
        listed.append({"id": image_id, "file_name": str(path), "height": size[0], "width": size[1]})
        boxes = xyxy_to_xywh(clip_boxes(found["boxes"].double(), size))
        for box, score, label, rle in zip(
            boxes.tolist(),
            found["scores"].tolist(),
            found["labels"].tolist(),
            encode_masks(masks),
            strict=True,
        ):
            entries.append({
                "image_id": image_id, "category_id": int(label) + 1, "segmentation": rle,
                "area": float(mask_utils.area(rle)), "bbox": box, "score": score,
            })  # fmt: skip
        print_literal(
            console,
            f"{path} -> {out / path.stem}_instances.png ({len(found['scores'])} instances)",
        )
    for k, entry in enumerate(entries):
        entry["id"] = k + 1
    results = {
        "images": listed,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(metadata.classes)],
        "annotations": entries,
    }
    path = out / "instances.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    result.written.append(path)
    return result
