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

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from torch import nn

from fcnlab.data.transforms import normalize
from fcnlab.inference import ModelMetadata
from fcnlab.ops.boxes import clip_boxes
from fcnlab.ops.masks import paste_masks_chunks
from fcnlab.runtime.console import Bars, print_literal
from fcnlab.tasks.base import Predictions, readable_images
from fcnlab.tasks.detection.coco_eval import detections_to_coco
from fcnlab.tasks.detection.predict import write_coco_results
from fcnlab.tasks.instance.coco_eval import encode_masks, rle_areas
from fcnlab.tasks.instance.evaluate import segment_instances
from fcnlab.viz.instances import draw_instances, instance_id_map


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
    entries, listed, result = [], [], Predictions()
    for path, image in readable_images(bars.track(images, "predicting"), result.unreadable):
        image_id = len(listed)
        size = tuple(image.shape[-2:])
        batch = normalize(image[None], metadata.mean, metadata.std).to(device)
        found = segment_instances(model, batch, score_threshold=score_threshold)[0]
        chunks = list(paste_masks_chunks(found["masks"], found["mask_stride"], size, size))
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
        rles = encode_masks(masks)
        found = {**found, "boxes": clip_boxes(found["boxes"], size), "segmentation": rles}
        boxes = detections_to_coco([found], [image_id], "bbox")
        regions = detections_to_coco([found], [image_id], "segm")
        for box, region, area in zip(boxes, regions, rle_areas(rles).tolist(), strict=True):
            entries.append({**region, "area": area, "bbox": box["bbox"]})
        print_literal(
            console,
            f"{path} -> {out / path.stem}_instances.png ({len(found['scores'])} instances)",
        )
    result.written.append(
        write_coco_results(out / "instances.json", listed, entries, metadata.classes)
    )
    return result
