"""The encoder and model registries and their builders (timm's ``create_model``)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from fcnlab.models.weights import WeightsSource, load_weights
from fcnlab.registry import Registry

ENCODERS: Registry[nn.Module] = Registry("encoder")
MODELS: Registry[nn.Module] = Registry("model")


def list_encoders() -> list[str]:
    """Names accepted by ``build_encoder``, sorted."""
    return ENCODERS.names()


def list_models() -> list[str]:
    """Names accepted by ``build_model``, sorted."""
    return MODELS.names()


def encoder_accepts(name: str, option: str) -> bool:
    """Whether the builder of encoder ``name`` takes the keyword ``option`` (e.g. ``fc``)."""
    return option in inspect.signature(ENCODERS.get(name)).parameters


def build_encoder(name: str, weights: WeightsSource | None = None, **options: Any) -> nn.Module:
    """Build encoder ``name`` with ``options`` and load ``weights`` (path or state dict) strictly.

    The encoder's ``forward(x)`` returns its stage outputs shallow to deep; ``out_channels`` and
    ``reductions`` describe them. A torchvision classifier checkpoint loads into the matching
    encoder: the classification layers the encoder does not hold are dropped first.
    """
    encoder = ENCODERS.build(name, **options)
    if weights is not None:
        load_weights(encoder, weights)
    return encoder


def make_encoder(
    encoder: str | nn.Module | None,
    default: str,
    weights: WeightsSource | None = None,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The encoder a model builder asked for: a module as given, or built by name (``default``)."""
    if isinstance(encoder, nn.Module):
        if options:
            raise ValueError(
                f"encoder_options {sorted(options)} only apply to an encoder given by name, "
                f"not to a {type(encoder).__name__} instance"
            )
        if weights is not None:
            load_weights(encoder, weights)
        return encoder
    return build_encoder(encoder or default, weights, **dict(options or {}))


def model_task(name: str) -> str:
    """The task of model ``name`` (``"segmentation"``, ``"detection"``, ``"instance"``): the
    ``task`` attribute of the class its builder is annotated to return (``-> CondInst``), known
    without building the model; ``"segmentation"`` when that class has none."""
    builder = MODELS.get(name)
    returned = inspect.get_annotations(builder).get("return")
    if isinstance(returned, str):  # postponed annotations: the class's name in its module
        returned = builder.__globals__.get(returned)
    return getattr(returned, "task", "segmentation")


def build_model(
    name: str,
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    **options: Any,
) -> nn.Module:
    """Build model ``name``: for segmentation, logits (N, num_classes, H, W) at the input's
    size; detectors (``model_task(name) == "detection"``) return their head maps.

    ``encoder`` is an encoder name (the model's default when None) or a built encoder;
    ``encoder_weights`` a path or state dict loaded into it; ``options`` go to the model's
    builder (e.g. ``encoder_options={"width": 0.125}``, ``classic=True`` for FCN).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    return MODELS.build(
        name, num_classes, encoder=encoder, encoder_weights=encoder_weights, **options
    )
