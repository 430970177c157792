from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.instance_models import FixedInstances, expected_masks
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rich.console import Console

from fcnlab.inference import ModelMetadata
from fcnlab.runtime.console import Bars
from fcnlab.tasks.instance.predict import write_instances
from fcnlab.viz.instances import draw_instances

CLASSES = ["disk", "square"]


def write_inputs(folder: Path) -> dict[str, np.ndarray]:
    """Two bright images (one of a size that is no multiple of 4), a black one (nothing to
    find), as PNGs; and a truncated PNG sorted first."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {
        "wide": rng.integers(60, 255, (40, 52, 3), dtype=np.uint8),
        "odd": rng.integers(60, 255, (30, 45, 3), dtype=np.uint8),
        "night": np.zeros((24, 28, 3), dtype=np.uint8),
    }
    for stem, rgb in images.items():
        Image.fromarray(rgb).save(folder / f"{stem}.png")
    good = (folder / "wide.png").read_bytes()
    (folder / "a_broken.png").write_bytes(good[: len(good) // 2])
    return images


def run(folder: Path, out: Path, threshold: float) -> tuple:
    metadata = ModelMetadata(
        name="fixed", num_classes=2, classes=CLASSES, palette=[[230, 25, 75], [60, 180, 75]],
        mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25],
    )  # fmt: skip
    console = Console(file=io.StringIO(), width=200)
    paths = sorted(folder.iterdir())
    # The model sees normalised images: a black one has a mean of -2, below its threshold.
    model = FixedInstances(min_brightness=-1.0)
    with Bars(console, enabled=False) as bars:
        result = write_instances(
            model, metadata, paths, out, torch.device("cpu"), threshold, console, bars
        )
    return result, console.file.getvalue()


def test_write_instances_files_ids_and_coco_rle(tmp_path: Path) -> None:
    images = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    result, printed = run(tmp_path / "in", out, threshold=0.3)
    # The truncated file is skipped and listed; every other image is written.
    assert [Path(p.file).name for p in result.unreadable] == ["a_broken.png"]
    assert "cannot read image" in result.unreadable[0].reason
    stems = ["night", "odd", "wide"]
    assert result.written == [
        *(out / f"{stem}_{kind}.png" for stem in stems for kind in ("instances", "instance_ids")),
        out / "instances.json",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in result.written)
    assert f"{tmp_path / 'in' / 'wide.png'} -> {out / 'wide'}_instances.png (3 instances)" in (
        " ".join(printed.split())
    )
    written = json.loads((out / "instances.json").read_text())
    assert written["categories"] == [{"id": 1, "name": "disk"}, {"id": 2, "name": "square"}]
    assert [(Path(i["file_name"]).stem, i["id"]) for i in written["images"]] == [
        ("night", 0), ("odd", 1), ("wide", 2),
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "instances.json"))  # pycocotools reads the file as it is
    assert len(coco.getAnnIds()) == len(written["annotations"]) == 6
    assert [a["id"] for a in written["annotations"]] == list(range(1, 7))
    for image in written["images"]:
        stem, height, width = Path(image["file_name"]).stem, image["height"], image["width"]
        rgb = images[stem]
        assert (height, width) == rgb.shape[:2]
        masks, kept = expected_masks(height, width, 0.3)
        if stem == "night":
            masks, kept = masks[:0], []  # the model finds nothing in a black image
        entries = [a for a in written["annotations"] if a["image_id"] == image["id"]]
        assert len(entries) == len(kept)
        for entry, mask, (label, score, (x1, y1, x2, y2)) in zip(entries, masks, kept, strict=True):
            assert entry["segmentation"]["size"] == [height, width]
            assert isinstance(entry["segmentation"]["counts"], str)
            np.testing.assert_array_equal(mask_utils.decode(entry["segmentation"]), mask)
            assert entry["area"] == mask.sum()
            assert entry["category_id"] == label + 1
            assert entry["score"] == pytest.approx(score)
            box = [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height]
            assert entry["bbox"] == pytest.approx(box)
        # The id map: 16-bit, k where the k-th entry (most confident first) owns the pixel.
        with Image.open(out / f"{stem}_instance_ids.png") as png:
            assert png.mode == "I;16" and png.size == (width, height)
            ids = np.array(png)
        scored = masks * np.array([s for _, s, _ in kept]).reshape(-1, 1, 1)
        best = scored.argmax(axis=0) + 1 if len(kept) else np.zeros((height, width), int)
        np.testing.assert_array_equal(ids, np.where(masks.any(axis=0), best, 0))
        for k, mask in enumerate(masks, start=1):
            assert (ids == k).any() and (ids[ids == k] == k).all() and mask[ids == k].all()
        with Image.open(out / f"{stem}_instances.png") as png:
            drawn = np.array(png.convert("RGB"))
        labels = [label for label, _, _ in kept]
        scores = [score for _, score, _ in kept]
        expected = draw_instances(rgb, masks, labels, scores, CLASSES)
        np.testing.assert_array_equal(drawn, expected)
        if stem == "night":
            np.testing.assert_array_equal(drawn, rgb)  # nothing drawn on an image without any


def test_write_instances_results_score_with_cocoeval(tmp_path: Path) -> None:
    # The file's masks against the same masks as ground truth: mask AP 1 once "bbox" is dropped
    # (loadRes would take the areas from the boxes).
    write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(tmp_path / "in", out, threshold=0.5)
    written = json.loads((out / "instances.json").read_text())
    assert sorted({round(a["score"], 6) for a in written["annotations"]}) == [0.6, 0.9]
    truth = {
        "images": written["images"],
        "categories": written["categories"],
        "annotations": [
            {**{k: a[k] for k in ("id", "image_id", "category_id", "segmentation", "area")},
             "iscrowd": 0}
            for a in written["annotations"]
        ],
    }  # fmt: skip
    results = [{k: v for k, v in a.items() if k != "bbox"} for a in written["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = truth
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_write_instances_with_condinst_at_a_size_no_stride_divides(tmp_path: Path) -> None:
    from fcnlab.models import build_model

    torch.manual_seed(0)
    model = build_model(
        "condinst", 2, encoder="vgg16_bn", encoder_options={"width": 0.125}, fpn_channels=32,
        head_depth=1, mask_branch_channels=16, mask_branch_depth=2,
    )  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = np.random.default_rng(1).integers(0, 255, (37, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "odd.png")
    metadata = ModelMetadata(
        name="condinst", num_classes=2, classes=CLASSES, palette=[[230, 25, 75], [60, 180, 75]]
    )
    console = Console(file=io.StringIO())
    with Bars(console, enabled=False) as bars:
        result = write_instances(
            model, metadata, [folder / "odd.png"], tmp_path / "out", torch.device("cpu"), 0.0,
            console, bars,
        )  # fmt: skip
    assert not result.unreadable and len(result.written) == 3
    written = json.loads((tmp_path / "out" / "instances.json").read_text())
    entries = written["annotations"]
    assert 0 < len(entries) <= 100  # an untrained model at threshold 0: up to top_k instances
    scores = [entry["score"] for entry in entries]
    assert scores == sorted(scores, reverse=True)
    masks = np.stack([mask_utils.decode(entry["segmentation"]) for entry in entries]).astype(bool)
    assert masks.shape[1:] == (37, 50)
    with Image.open(tmp_path / "out" / "odd_instance_ids.png") as png:
        ids = np.array(png)
    assert masks.any(axis=(1, 2)).sum() > 1  # masks to compare
    # Each pixel belongs to the first (most confident) entry whose mask holds it.
    first = np.where(masks.any(axis=0), masks.argmax(axis=0) + 1, 0)
    np.testing.assert_array_equal(ids, first)
    assert (masks.sum(axis=0) > 1).any()  # where masks overlap, the id map chose
