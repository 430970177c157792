"""Staged training: freeze and unfreeze a model's encoder, and optimizer parameter groups.

A model is split into ``model.encoder`` (the backbone, often pretrained) and everything else
(decoder and head). A frozen encoder is a fixed feature extractor:

* its parameters have ``requires_grad=False`` (and their old ``.grad`` is dropped), so backward
  computes no gradient for them and optimizers, which skip parameters without a gradient, never
  update them, weight decay and momentum included;
* its batch-norm layers use and keep their running statistics even while the model is in train
  mode. ``freeze_encoder`` puts them in eval mode and registers a forward pre-hook on each of them
  that sets ``training = False`` again before every call, so a later ``model.train()`` (which the
  training loop calls every epoch) cannot switch them back. A hook on the layer itself works for
  every model class, needs no ``train()`` override and survives ``torch.compile``.

``unfreeze_encoder`` removes the hooks, restores ``requires_grad`` and gives the batch-norm layers
the encoder's current mode back.
"""

from __future__ import annotations

from typing import Any

from torch import nn

# Batch-norm layers that update running statistics in train mode; GroupNorm/LayerNorm have none.
_BATCH_NORMS = (nn.modules.batchnorm._BatchNorm,)
_NO_DECAY_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)
_HOOK_ATTR = "_fcnlab_freeze_hook"


def encoder_of(model: nn.Module) -> nn.Module:
    """``model.encoder``, or a TypeError that says what the freeze API expects."""
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise TypeError(
            f"{type(model).__name__} has no 'encoder' sub-module; the freeze API needs models "
            "split into .encoder (backbone) and the rest (decoder, head)"
        )
    return encoder


def _keep_eval(module: nn.Module, args: tuple[Any, ...]) -> None:
    module.training = False


def freeze_encoder(model: nn.Module) -> nn.Module:
    """Freeze ``model.encoder``: no gradients, no updates, fixed batch-norm statistics.

    Idempotent; returns ``model`` so that calls chain.
    """
    encoder = encoder_of(model)
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
        parameter.grad = None
    for module in encoder.modules():
        if isinstance(module, _BATCH_NORMS) and not hasattr(module, _HOOK_ATTR):
            module.eval()
            setattr(module, _HOOK_ATTR, module.register_forward_pre_hook(_keep_eval))
    return model


def unfreeze_encoder(model: nn.Module) -> nn.Module:
    """Undo ``freeze_encoder``: gradients again, batch norm follows the encoder's mode again."""
    encoder = encoder_of(model)
    for parameter in encoder.parameters():
        parameter.requires_grad_(True)
    for module in encoder.modules():
        handle = getattr(module, _HOOK_ATTR, None)
        if handle is not None:
            handle.remove()
            delattr(module, _HOOK_ATTR)
            module.train(encoder.training)
    return model


def is_encoder_frozen(model: nn.Module) -> bool:
    """True when no parameter of ``model.encoder`` requires a gradient."""
    return not any(p.requires_grad for p in encoder_of(model).parameters())


def _is_no_decay(module: nn.Module, name: str, parameter: nn.Parameter) -> bool:
    return isinstance(module, _NO_DECAY_NORMS) or name == "bias" or parameter.ndim <= 1


def _split_decay(root: nn.Module, skip: set[int]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decay, no_decay) parameters of ``root``, each once, leaving out the ids in ``skip``."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in root.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if id(parameter) in skip:
                continue
            skip.add(id(parameter))
            (no_decay if _is_no_decay(module, name, parameter) else decay).append(parameter)
    return decay, no_decay


def param_groups(
    model: nn.Module,
    encoder_lr_mult: float = 1.0,
    lr: float | None = None,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: encoder and decoder, each with and without weight decay.

    Returns a list of dicts, at most four and never an empty one, in this order::

        {"name": "encoder",          "params": [...], "lr_mult": encoder_lr_mult}
        {"name": "encoder_no_decay", "params": [...], "lr_mult": encoder_lr_mult,
                                                       "weight_decay": 0.0}
        {"name": "decoder",          "params": [...], "lr_mult": 1.0}
        {"name": "decoder_no_decay", "params": [...], "lr_mult": 1.0, "weight_decay": 0.0}

    "decoder" is every parameter outside ``model.encoder`` (decoder and head). Norm-layer
    parameters, biases and any other 1-D parameter never get weight decay. With ``lr`` given each
    group also has ``"lr": lr * lr_mult``; with ``weight_decay`` given the decay groups have
    ``"weight_decay": weight_decay``; keys left out fall back to the optimizer's defaults, so
    ``torch.optim.SGD(param_groups(model, 0.1, lr=0.01), lr=0.01, weight_decay=5e-4)`` works as
    is. Without ``lr`` the optimizer's default lr applies to every group, so the engine must
    then set ``group["lr"] = base_lr * group["lr_mult"]`` itself; optimizers keep the extra keys.
    Frozen encoder parameters are included: they get no gradient, so optimizers skip them until
    ``unfreeze_encoder``, and one optimizer serves every stage.
    """
    if encoder_lr_mult < 0:
        raise ValueError(f"encoder_lr_mult must be >= 0, got {encoder_lr_mult}")
    seen: set[int] = set()
    encoder_decay, encoder_no_decay = _split_decay(encoder_of(model), seen)
    decoder_decay, decoder_no_decay = _split_decay(model, seen)
    groups = []
    for name, params, lr_mult, decays in (
        ("encoder", encoder_decay, encoder_lr_mult, True),
        ("encoder_no_decay", encoder_no_decay, encoder_lr_mult, False),
        ("decoder", decoder_decay, 1.0, True),
        ("decoder_no_decay", decoder_no_decay, 1.0, False),
    ):
        if not params:
            continue
        group: dict[str, Any] = {"name": name, "params": params, "lr_mult": lr_mult}
        if lr is not None:
            group["lr"] = lr * lr_mult
        if not decays:
            group["weight_decay"] = 0.0
        elif weight_decay is not None:
            group["weight_decay"] = weight_decay
        groups.append(group)
    return groups
