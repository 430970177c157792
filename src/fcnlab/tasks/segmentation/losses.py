"""Segmentation losses: pixel-wise cross-entropy, soft Dice, focal, and weighted combinations.

The functions take logits ``(N, K, H, W)`` and a target ``(N, H, W)`` of class indices in which
``ignore_index`` marks pixels that must not count: they add nothing to the loss, to its
normaliser or to the gradient. The modules only hold configuration. :func:`build_loss` turns a
spec such as ``{"ce": 1.0, "dice": 0.5}`` into a :class:`CombinedLoss`.

Auxiliary outputs follow torchvision's convention: a model may return a dict whose ``"out"`` is the
main logits and whose ``"aux"`` (or ``"aux1"``, ``"aux2"``, ... any key starting with ``"aux"``)
are auxiliary logits; :class:`CombinedLoss` adds ``aux_weight`` times the same loss of each
(torchvision's reference scripts use 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.registry import Registry
from fcnlab.tasks.segmentation.metrics import check_labels, valid_mask

REDUCTIONS = ("mean", "sum", "none")
ClassWeights = torch.Tensor | Sequence[float] | None
LossSpec = str | Mapping[str, float | Mapping[str, Any]]


def _check_inputs(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None, weight: ClassWeights
) -> torch.Tensor | None:
    """Validate shapes and labels; return the class weights as a tensor on the logits' device."""
    if logits.dim() < 2 or logits.dim() != target.dim() + 1:
        raise ValueError(
            f"logits must be (N, K, H, W) with target (N, H, W), got logits {tuple(logits.shape)} "
            f"and target {tuple(target.shape)}"
        )
    if logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in batch or "
            "spatial size"
        )
    num_classes = logits.shape[1]
    check_labels(target, num_classes, ignore_index, "target")
    if weight is None:
        return None
    weight = torch.as_tensor(weight, dtype=torch.float32, device=logits.device)
    if weight.shape != (num_classes,):
        raise ValueError(
            f"class weights have shape {tuple(weight.shape)} but the logits have {num_classes} "
            "classes"
        )
    return weight


def _reduce(pixel_loss: torch.Tensor, normaliser: torch.Tensor, reduction: str) -> torch.Tensor:
    """Sum, per-pixel map, or sum divided by ``normaliser`` (0 when nothing counts, not NaN)."""
    if reduction == "none":
        return pixel_loss
    total = pixel_loss.sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / normaliser.clamp_min(torch.finfo(total.dtype).tiny)
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _pixel_weights(
    target: torch.Tensor, ignore_index: int | None, weight: torch.Tensor | None
) -> torch.Tensor:
    """Per-pixel weight: the class weight of its target (1 without weights); 0 if ignored."""
    valid = valid_mask(target, ignore_index)
    if weight is None:
        return valid.float()
    return weight[target.where(valid, 0).long()] * valid


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: ClassWeights = None,
    ignore_index: int | None = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """Pixel-wise cross-entropy, ``-w[t] log softmax(logits)[t]`` at each non-ignored pixel.

    ``reduction="mean"`` divides by the summed weights of the non-ignored pixels (as
    ``F.cross_entropy``) and gives 0 rather than NaN when every pixel is ignored; ``"sum"`` is the
    unnormalised loss of the original FCN (whose tiny learning rates assume it); ``"none"`` gives
    the (N, H, W) map.
    """
    weight = _check_inputs(logits, target, ignore_index, weight)
    pixel_loss = F.cross_entropy(
        logits.float(),
        target.long(),
        weight=weight,
        ignore_index=ignore_index if ignore_index is not None else -100,
        reduction="none",
    )
    return _reduce(pixel_loss, _pixel_weights(target, ignore_index, weight).sum(), reduction)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: ClassWeights = None,
    ignore_index: int | None = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017), ``-alpha[t] (1 - p_t)^gamma log p_t`` per pixel.

    Multi-class form: ``alpha`` is a per-class weight vector (None: all 1). ``"mean"`` divides by
    the summed ``alpha`` of the non-ignored pixels, so that ``gamma=0`` is exactly
    :func:`cross_entropy` with ``weight=alpha``.
    """
    if gamma < 0:
        raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
    alpha = _check_inputs(logits, target, ignore_index, alpha)
    pixel_weight = _pixel_weights(target, ignore_index, alpha)
    safe_target = target.where(pixel_weight > 0, 0).long().unsqueeze(1)
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, safe_target).squeeze(1)
    pixel_loss = -log_p
    if gamma:
        pixel_loss = pixel_loss * (1 - log_p.exp()).pow(gamma)
    return _reduce(pixel_loss * pixel_weight, pixel_weight.sum(), reduction)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: ClassWeights = None,
    ignore_index: int | None = 255,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Multi-class soft Dice loss, ``1 - mean_c (2 sum p_c g_c + s) / (sum p_c + sum g_c + s)``.

    ``p`` is the softmax of the logits, ``g`` the one-hot target; sums run over the whole batch
    and every non-ignored pixel, with additive smoothing ``s`` (Milletari et al.'s V-Net Dice
    without the squares in the denominator, as segmentation_models_pytorch). Every class takes
    part, so predicting a class that is absent from the batch is penalised.
    ``weight`` turns the mean over classes into a weighted mean.
    """
    weight = _check_inputs(logits, target, ignore_index, weight)
    num_classes = logits.shape[1]
    valid = valid_mask(target, ignore_index).unsqueeze(1)
    probs = F.softmax(logits.float(), dim=1) * valid
    onehot = F.one_hot(target.where(valid[:, 0], 0).long(), num_classes).movedim(-1, 1)
    onehot = onehot * valid
    dims = [0, *range(2, logits.dim())]
    overlap = (probs * onehot).sum(dims)
    sizes = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * overlap + smooth) / (sizes + smooth).clamp_min(torch.finfo(probs.dtype).tiny)
    if weight is None:
        return 1 - dice.mean()
    return 1 - (weight * dice).sum() / weight.sum()


class CrossEntropyLoss(nn.Module):
    """:func:`cross_entropy` as a module; class weights are a buffer (they follow ``.to()``)."""

    def __init__(
        self, weight: ClassWeights = None, ignore_index: int | None = 255, reduction: str = "mean"
    ) -> None:
        super().__init__()
        _reduce(torch.zeros(1), torch.ones(()), reduction)  # validate eagerly
        self.register_buffer("weight", _as_buffer(weight))
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) logits, (N, H, W) target -> loss."""
        return cross_entropy(logits, target, self.weight, self.ignore_index, self.reduction)


class FocalLoss(nn.Module):
    """:func:`focal_loss` as a module."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: ClassWeights = None,
        ignore_index: int | None = 255,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _reduce(torch.zeros(1), torch.ones(()), reduction)
        self.gamma = gamma
        self.register_buffer("alpha", _as_buffer(alpha))
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) logits, (N, H, W) target -> loss."""
        return focal_loss(logits, target, self.gamma, self.alpha, self.ignore_index, self.reduction)


class DiceLoss(nn.Module):
    """:func:`soft_dice_loss` as a module."""

    def __init__(
        self, weight: ClassWeights = None, ignore_index: int | None = 255, smooth: float = 1.0
    ) -> None:
        super().__init__()
        self.register_buffer("weight", _as_buffer(weight))
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) logits, (N, H, W) target -> loss."""
        return soft_dice_loss(logits, target, self.weight, self.ignore_index, self.smooth)


def _as_buffer(weight: ClassWeights) -> torch.Tensor | None:
    return None if weight is None else torch.as_tensor(weight, dtype=torch.float32).clone()


LOSSES: Registry[nn.Module] = Registry("loss")


@LOSSES.register("ce")
def build_cross_entropy(
    class_weights: ClassWeights = None, ignore_index: int | None = 255, **options: Any
) -> nn.Module:
    """Cross-entropy; options: ``reduction`` ("mean" or the classic FCN "sum")."""
    return CrossEntropyLoss(class_weights, ignore_index, **options)


@LOSSES.register("focal")
def build_focal(
    class_weights: ClassWeights = None, ignore_index: int | None = 255, **options: Any
) -> nn.Module:
    """Focal loss with ``alpha`` = the class weights; options: ``gamma``, ``reduction``."""
    return FocalLoss(alpha=class_weights, ignore_index=ignore_index, **options)


@LOSSES.register("dice")
def build_dice(
    class_weights: ClassWeights = None, ignore_index: int | None = 255, **options: Any
) -> nn.Module:
    """Soft Dice with the class weights weighting its per-class mean; options: ``smooth``."""
    return DiceLoss(class_weights, ignore_index, **options)


Output = torch.Tensor | Mapping[str, torch.Tensor]


class CombinedLoss(nn.Module):
    """A weighted sum of named losses, applied to the main output and to auxiliary outputs.

    ``forward(output, target)`` accepts logits or a dict ``{"out": logits, "aux": logits, ...}``
    (see the module docstring); auxiliary logits smaller than the target are resized bilinearly.
    """

    def __init__(self, terms: Mapping[str, tuple[float, nn.Module]], aux_weight: float = 0.5):
        super().__init__()
        if not terms:
            raise ValueError("a combined loss needs at least one term")
        self.weights = {name: float(weight) for name, (weight, _) in terms.items()}
        self.terms = nn.ModuleDict({name: loss for name, (_, loss) in terms.items()})
        self.aux_weight = aux_weight

    def components(self, output: Output, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each weighted term by name (``"ce"``, and ``"aux/ce"`` for an ``"aux"`` output)."""
        if isinstance(output, torch.Tensor):
            heads = {"out": output}
        elif "out" in output:
            heads = {"out": output["out"]}
            if self.aux_weight:
                heads.update((key, value) for key, value in output.items() if key.startswith("aux"))
        else:
            raise ValueError(
                f"model output dict has keys {sorted(output)}; expected 'out' and optional 'aux'"
            )
        parts = {}
        for head, logits in heads.items():
            if logits.shape[2:] != target.shape[1:]:
                logits = F.interpolate(
                    logits, size=target.shape[1:], mode="bilinear", align_corners=False
                )
            scale = 1.0 if head == "out" else self.aux_weight
            prefix = "" if head == "out" else f"{head}/"
            for name, loss in self.terms.items():
                parts[prefix + name] = scale * self.weights[name] * loss(logits, target)
        return parts

    def forward(self, output: Output, target: torch.Tensor) -> torch.Tensor:
        """The total loss: the sum of :meth:`components`."""
        return torch.stack(list(self.components(output, target).values())).sum()

    def extra_repr(self) -> str:
        return f"weights={self.weights}, aux_weight={self.aux_weight}"


def build_loss(
    spec: LossSpec = "ce",
    class_weights: ClassWeights = None,
    ignore_index: int | None = 255,
    aux_weight: float = 0.5,
) -> CombinedLoss:
    """A :class:`CombinedLoss` from a name (``"ce"``) or a mapping of names to weights.

    A weight may also be a mapping with ``"weight"`` and the term's options, e.g.
    ``{"ce": 1.0, "focal": {"weight": 0.5, "gamma": 2}}``. Names come from :data:`LOSSES`.
    ``class_weights`` (e.g. ``fcnlab.data.median_frequency_weights``) go to every term.
    """
    if isinstance(spec, str):
        spec = {spec: 1.0}
    terms = {}
    for name, value in spec.items():
        options = dict(value) if isinstance(value, Mapping) else {"weight": value}
        weight = options.pop("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise ValueError(f"loss {name!r} has weight {weight!r}; expected a number")
        builder = LOSSES.get(name)
        try:
            loss = builder(class_weights=class_weights, ignore_index=ignore_index, **options)
        except TypeError as error:
            raise ValueError(f"loss {name!r} got options {options}: {error}") from None
        terms[name] = (weight, loss)
    return CombinedLoss(terms, aux_weight=aux_weight)
