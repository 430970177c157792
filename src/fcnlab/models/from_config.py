"""Build the model a config's ``model:`` section describes (training, evaluation, inference)."""

from __future__ import annotations

from torch import nn

from fcnlab.config import ModelConfig
from fcnlab.runtime.checkpoint import load_matching, load_weights


def build_model_from_config(config: ModelConfig) -> nn.Module:
    """``build_model(name, num_classes, encoder, encoder_weights, **options)``, then the
    matching tensors of ``init_from`` when set; a bad name or option is an error that starts
    with ``model:``."""
    from fcnlab.models.registry import build_model

    try:
        model = build_model(
            config.name,
            config.num_classes,
            encoder=config.encoder,
            encoder_weights=config.encoder_weights,
            **config.options,
        )
    except (KeyError, ValueError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ValueError(f"model: {message}") from None
    if config.init_from is not None:
        load_matching(model, load_weights(config.init_from), config.init_from)
    return model
