"""``fcnlab predict`` with an instance segmentation checkpoint: pictures, id maps, COCO JSON."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from fcnlab.cli.main import main
from fcnlab.config import Config, DataConfig, ModelConfig, config_to_dict
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import save_checkpoint


def tiny_condinst(folder: Path) -> Path:
    """An untrained narrow CondInst checkpoint in the engine's format for Shapes' two classes."""
    config = Config(
        model=ModelConfig(
            name="condinst", num_classes=2, encoder="vgg16_bn",
            options={"encoder_options": {"width": 0.125}, "fpn_channels": 32, "head_depth": 1,
                     "mask_branch_channels": 16, "mask_branch_depth": 2},
        ),
        data=DataConfig(name="shapes", options={"num_classes": 2, "num_images": 2}),
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model_from_config(config.model)
    payload = {"model": model.state_dict(), "config": config_to_dict(config)}
    return save_checkpoint(folder / "condinst.pt", payload)


def test_predict_with_an_instance_model_writes_pictures_id_maps_and_coco_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tiny_condinst(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"tall": (70, 33), "wide": (37, 61)}
    for stem, (height, width) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            folder / f"{stem}.png"
        )
    (folder / "notes.png").write_text("not an image\n")
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", str(checkpoint), str(folder), "--out", str(out)]
    # An untrained model's scores are low: threshold 0 keeps its top 100 per image.
    assert main([*argv, "--score-threshold", "0"]) == 1  # one unreadable image
    captured = capsys.readouterr()
    printed = " ".join(captured.out.split())
    assert "wrote 2 pictures of instances with their instance-id maps" in printed
    assert f"{folder / 'notes.png'}: cannot read image" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}_{kind}.png" for stem in sizes for kind in ("instances", "instance_ids")]
        + ["instances.json"]
    )
    written = json.loads((out / "instances.json").read_text())
    assert written["categories"] == [{"id": 1, "name": "disk"}, {"id": 2, "name": "square"}]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "instances.json"))
    for image in written["images"]:
        stem = Path(image["file_name"]).stem
        assert (image["height"], image["width"]) == sizes[stem]
        entries = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert 0 < len(entries) <= 100
        with Image.open(out / f"{stem}_instance_ids.png") as png:
            ids = np.array(png)
        with Image.open(out / f"{stem}_instances.png") as png:
            assert png.size == (image["width"], image["height"]) and png.mode == "RGB"
        assert ids.shape == sizes[stem] and ids.max() <= len(entries)
        for k, entry in enumerate(entries, start=1):
            mask = mask_utils.decode(entry["segmentation"]).astype(bool)
            assert mask[ids == k].all()  # an instance's id only where its mask holds
