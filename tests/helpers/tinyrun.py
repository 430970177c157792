"""A tiny trained-looking run on disk: FCN-8s at 1/16 width with random weights, its config
(Shapes, 3 classes, ImageNet normalisation), ``checkpoints/last.pt`` as the engine writes it,
``final.safetensors`` and ``config.yaml``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fcnlab.config import Config, DataConfig, ModelConfig, OutputConfig, config_to_dict, save_config
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import save_checkpoint, save_safetensors


def tiny_config(root: Path) -> Config:
    """FCN-8s (VGG16 at width 1/16) for Shapes with background, disk and square."""
    return Config(
        model=ModelConfig(
            name="fcn8s",
            num_classes=3,
            encoder="vgg16",
            options={"encoder_options": {"width": 0.0625}},
        ),
        data=DataConfig(name="shapes", options={"num_classes": 3, "num_images": 2, "size": 32}),
        output=OutputConfig(root=str(root), name="tiny", tensorboard=False),
    )


def random_model(config: Config, seed: int = 0) -> nn.Module:
    """The config's model with its all-zero weights (FCN's scores) drawn at random, so that its
    predictions vary across the image."""
    torch.manual_seed(seed)
    model = build_model_from_config(config.model)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any() and parameter.dim() > 1:
                # Zero-mean over input channels: ReLU features are all positive, and a score
                # with a non-zero sum would pick one class everywhere.
                parameter.normal_()
                parameter.sub_(parameter.mean(dim=1, keepdim=True))
    return model.eval()


def write_run(root: Path) -> tuple[Config, nn.Module]:
    """Write the run folder ``root/tiny`` and return its config and model."""
    config = tiny_config(root)
    model = random_model(config)
    run = config.run_dir
    (run / "checkpoints").mkdir(parents=True)
    save_config(config, run / "config.yaml")
    save_checkpoint(
        run / "checkpoints" / "last.pt",
        {"reason": "epoch", "model": model.state_dict(), "config": config_to_dict(config)},
    )
    save_safetensors(model, run / "final.safetensors")
    return config, model
