"""Sliding-window inference: tile a large image, run each window, blend the logits.

Windows overlap by a fraction of their size; in the overlaps the logits are averaged with a
Gaussian weight window (nnU-Net's choice, sigma = 1/8 of the window), so a pixel near a window's
border, where the network saw little context, counts less than one near another window's centre.
The network only ever sees ``batch_size`` windows at once: its activations are bounded by the
window, the image's size only enters the (N, K, H, W) logit accumulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

Forward = Callable[[torch.Tensor], torch.Tensor]

# nnU-Net's Gaussian importance map: sigma is 1/8 of the window side.
SIGMA_FRACTION = 1 / 8


def gaussian_weights(length: int, sigma_fraction: float = SIGMA_FRACTION) -> torch.Tensor:
    """A 1-D Gaussian (length,) centred on the window (peak 1 on a pixel centre), all > 0."""
    if length < 1:
        raise ValueError(f"a weight window needs length >= 1, got {length}")
    centre = (length - 1) / 2
    sigma = max(length * sigma_fraction, 1e-6)
    position = torch.arange(length, dtype=torch.float64)
    return torch.exp(-0.5 * ((position - centre) / sigma) ** 2)


def window_weights(height: int, width: int, sigma_fraction: float = SIGMA_FRACTION) -> torch.Tensor:
    """The separable weight window (height, width): smooth, positive, largest at the centre."""
    rows = gaussian_weights(height, sigma_fraction)
    cols = gaussian_weights(width, sigma_fraction)
    return (rows[:, None] * cols[None, :]).float()


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``window`` pixels covering [0, size) with at least the
    ``overlap`` fraction shared by neighbours; the last window ends at ``size``."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if window >= size:
        return [0]
    stride = max(1, math.floor(window * (1 - overlap)))
    count = math.ceil((size - window) / stride) + 1
    # Spread the windows evenly so the last one ends exactly at the border.
    step = (size - window) / (count - 1)
    return [round(i * step) for i in range(count)]


def tiles(
    height: int, width: int, window: tuple[int, int], overlap: float
) -> Iterator[tuple[int, int, int, int]]:
    """(top, left, window height, window width) of every window over a height x width image;
    a window larger than the image shrinks to it."""
    win_h, win_w = min(window[0], height), min(window[1], width)
    for top in window_starts(height, win_h, overlap):
        for left in window_starts(width, win_w, overlap):
            yield top, left, win_h, win_w


def pad_to_multiple(images: torch.Tensor, multiple: int, value: float = 0.0) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom and right to the next multiple of ``multiple``; crop the
    result back with ``[..., :H, :W]``."""
    if multiple < 1:
        raise ValueError(f"the padding multiple must be >= 1, got {multiple}")
    pad_h, pad_w = -images.shape[-2] % multiple, -images.shape[-1] % multiple
    if pad_h == 0 and pad_w == 0:
        return images
    return F.pad(images, (0, pad_w, 0, pad_h), value=value)


def padded_forward(forward: Forward, images: torch.Tensor, multiple: int | None) -> torch.Tensor:
    """``forward`` on ``images`` padded to ``multiple`` (none when None), logits cropped back to
    the input's (H, W)."""
    height, width = images.shape[-2:]
    padded = images if multiple is None else pad_to_multiple(images, multiple)
    return forward(padded)[..., :height, :width]


def sliding_window(
    forward: Forward,
    images: torch.Tensor,
    window: int | tuple[int, int],
    overlap: float = 0.33,
    batch_size: int = 4,
    multiple: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Logits (N, K, H, W) of ``images`` (N, C, H, W), computed window by window.

    ``forward`` maps (B, C, h, w) to (B, K, h, w); up to ``batch_size`` windows go through it
    at once. Logits are blended with :func:`window_weights`; ``multiple`` pads each window
    (see :func:`padded_forward`). The accumulator lives on the images' device. ``progress`` is
    called with (windows done, windows in all) after each batch of windows.
    """
    window = (window, window) if isinstance(window, int) else tuple(window)
    if min(window) < 1 or batch_size < 1:
        raise ValueError(f"window {window} and batch_size {batch_size} must be >= 1")
    n, _, height, width = images.shape
    boxes = list(tiles(height, width, window, overlap))
    weights = window_weights(boxes[0][2], boxes[0][3]).to(images.device)
    total: torch.Tensor | None = None
    norm = torch.zeros(height, width, device=images.device)
    for top, left, win_h, win_w in boxes:
        norm[top : top + win_h, left : left + win_w] += weights
    step = max(1, batch_size // n)
    for start in range(0, len(boxes), step):
        chunk = boxes[start : start + step]
        crops = torch.cat([images[..., t : t + h, s : s + w] for t, s, h, w in chunk])
        logits = padded_forward(forward, crops, multiple).float()
        if total is None:
            total = logits.new_zeros(n, logits.shape[1], height, width)
        for i, (top, left, win_h, win_w) in enumerate(chunk):
            part = logits[i * n : (i + 1) * n]
            total[..., top : top + win_h, left : left + win_w].addcmul_(part, weights)
        if progress is not None:
            progress(min(start + step, len(boxes)), len(boxes))
    assert total is not None
    return total.div_(norm)  # in place: the accumulator is the one image-sized tensor
