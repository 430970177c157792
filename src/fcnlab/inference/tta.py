"""Test-time augmentation: logits averaged over horizontal flips and rescaled copies.

Each augmented copy goes through the forward function (a plain forward or a sliding window),
its logits are mapped back to the input's grid (un-flipped, resized bilinearly to (H, W)) and the
mean over all copies is returned. Logits are averaged, not probabilities (mmsegmentation
averages softmax outputs), so the result is again raw scores, like a plain forward's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fcnlab.inference.sliding import Forward


@dataclass(frozen=True)
class TTA:
    """Which copies to average: every scale in ``scales``, each also flipped when ``flip``."""

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"TTA scales must be positive numbers, got {list(self.scales)}")

    @property
    def copies(self) -> int:
        """How many forward passes one image costs."""
        return len(self.scales) * (2 if self.flip else 1)


def parse_tta(text: str | None) -> TTA:
    """``"flip,scales=0.75,1,1.25"`` -> ``TTA(flip=True, scales=(0.75, 1.0, 1.25))``.

    Items are ``flip`` and ``scales=`` followed by numbers (the numbers after ``scales=`` run to
    the end or the next word); ``None``, ``""`` and ``"none"`` mean no augmentation.
    """
    if text is None or text.strip().lower() in ("", "none"):
        return TTA()
    flip, scales, in_scales = False, [], False
    for item in (part.strip() for part in text.split(",")):
        if item == "flip":
            flip, in_scales = True, False
        elif item.startswith("scales="):
            in_scales = True
            scales.append(_scale(item.removeprefix("scales="), text))
        elif in_scales and item:
            scales.append(_scale(item, text))
        else:
            raise ValueError(
                f"--tta {text!r}: unknown item {item!r}; expected 'flip' and/or "
                "'scales=S1,S2,...', e.g. 'flip,scales=0.75,1,1.25'"
            )
    return TTA(flip=flip, scales=tuple(scales) if scales else (1.0,))


def _scale(item: str, text: str) -> float:
    try:
        value = float(item)
    except ValueError:
        raise ValueError(f"--tta {text!r}: scale {item!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"--tta {text!r}: scale {item!r} must be positive")
    return value


def resize_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (N, K, h, w) to ``size`` (H, W); the same tensor when equal."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(H, W) times ``scale``, rounded, at least 1 pixel."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def tta_logits(forward: Forward, images: torch.Tensor, tta: TTA) -> torch.Tensor:
    """Mean logits (N, K, H, W) of ``forward`` over the copies of ``images`` named by ``tta``.

    Images are resized bilinearly (antialiased when shrinking, as the evaluation transforms
    resize) and logits resized back bilinearly; flipped logits are flipped back.
    """
    height, width = images.shape[-2:]
    total: torch.Tensor | None = None
    for scale in tta.scales:
        size = scaled_size(height, width, scale)
        scaled = images
        if size != (height, width):
            shrink = size[0] < height or size[1] < width
            scaled = F.interpolate(images, size=size, mode="bilinear", antialias=shrink)
        views = [forward(scaled)]
        if tta.flip:
            views.append(forward(scaled.flip(-1)).flip(-1))
        for logits in views:
            logits = resize_logits(logits.float(), (height, width))
            total = logits if total is None else total + logits
    assert total is not None
    return total / tta.copies
