"""Reading state dicts from ``.pth``/``.pt``/``.safetensors`` files and loading them strictly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import torch
from torch import nn

from fcnlab.runtime.checkpoint import (
    listing,
    read_safetensors,
    read_torch_file,
    state_dict_differences,
)

StateDict = dict[str, torch.Tensor]
WeightsSource = Union[str, "os.PathLike[str]", Mapping[str, torch.Tensor]]

# Training checkpoints wrap the weights; these keys hold them.
WRAPPER_KEYS = ("state_dict", "model")


def describe(weights: WeightsSource) -> str:
    """How an error message names a weights source: the file, or 'the given state dict'."""
    if isinstance(weights, Mapping):
        return "the given state dict"
    return f"'{os.fspath(weights)}'"


def read_state_dict(weights: WeightsSource) -> StateDict:
    """The tensors in ``weights``: a state dict, or a ``.pth``/``.pt``/``.safetensors`` path.

    ``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)``; a checkpoint that
    wraps its weights under ``state_dict`` or ``model`` is unwrapped. A file that cannot be read
    is a :class:`fcnlab.runtime.CheckpointError` naming it and saying why.
    """
    if isinstance(weights, Mapping):
        state: object = weights
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file '{path}' does not exist")
        suffix = path.suffix.lower()
        if suffix == ".safetensors":
            state = read_safetensors(path)
        elif suffix in (".pth", ".pt"):
            state = read_torch_file(path, "weights file")
        else:
            raise ValueError(
                f"weights file '{path}' has suffix {suffix!r}; expected .pth, .pt or .safetensors"
            )
    for key in WRAPPER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping):
        raise ValueError(f"{describe(weights)} holds a {type(state).__name__}, not a state dict")
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{describe(weights)} has entries that are not tensors: {listing(bad)}")
    return dict(state)


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError listing missing and unexpected keys and shape mismatches, if any.

    A missing BatchNorm ``num_batches_tracked`` is tolerated: checkpoints saved before PyTorch
    0.4.1 (torchvision's original ImageNet weights among them) do not have it.
    """
    problems = state_dict_differences(
        module.state_dict(), state, may_miss=lambda key: key.endswith("num_batches_tracked")
    )
    if problems:
        raise ValueError(
            f"weights {source} do not fit {type(module).__name__}: " + "; ".join(problems)
        )


def load_weights(module: nn.Module, weights: WeightsSource) -> nn.Module:
    """Load ``weights`` into ``module`` strictly (keys and shapes) and return the module.

    A module with an ``adapt_state_dict(state)`` method first converts foreign layouts with it
    (e.g. a VGG encoder reshapes torchvision's ``classifier.0`` Linear into its fc6 convolution).
    """
    state = read_state_dict(weights)
    adapt = getattr(module, "adapt_state_dict", None)
    if callable(adapt):
        state = adapt(state)
    check_state_dict(module, state, describe(weights))
    own = module.state_dict()
    for key in own:
        if key not in state:
            state[key] = own[key]
    module.load_state_dict(state, strict=True)
    return module
