"""Reading state dicts from ``.pth``/``.pt``/``.safetensors`` files and loading them strictly."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Union

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]
WeightsSource = Union[str, "os.PathLike[str]", Mapping[str, torch.Tensor]]

MAX_LISTED = 10
# Training checkpoints wrap the weights; these keys hold them.
WRAPPER_KEYS = ("state_dict", "model")


def _listing(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f" and {len(items) - MAX_LISTED} more"
    return shown


def describe(weights: WeightsSource) -> str:
    """How an error message names a weights source: the file, or 'the given state dict'."""
    if isinstance(weights, Mapping):
        return "the given state dict"
    return f"'{os.fspath(weights)}'"


def read_state_dict(weights: WeightsSource) -> StateDict:
    """The tensors in ``weights``: a state dict, or a ``.pth``/``.pt``/``.safetensors`` path.

    ``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)``; a checkpoint that
    wraps its weights under ``state_dict`` or ``model`` is unwrapped.
    """
    if isinstance(weights, Mapping):
        state: object = weights
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file '{path}' does not exist")
        suffix = path.suffix.lower()
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        elif suffix in (".pth", ".pt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
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
        raise ValueError(f"{describe(weights)} has entries that are not tensors: {_listing(bad)}")
    return dict(state)


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError listing missing and unexpected keys and shape mismatches, if any.

    A missing BatchNorm ``num_batches_tracked`` is tolerated: checkpoints saved before PyTorch
    0.4.1 (torchvision's original ImageNet weights among them) do not have it.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} is {tuple(state[k].shape)} in the weights but {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = [
        f"{label} ({len(items)}): {_listing(items)}"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
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
