"""``Predictor``: a trained model applied to images of any size, one call from file to labels.

It accepts paths, PIL images, NumPy arrays and tensors; normalises them with the model's mean
and std; runs the network whole or window by window (:mod:`~fcnlab.inference.sliding`) under
optional test-time augmentation (:mod:`~fcnlab.inference.tta`); and returns labels (and
probabilities) at each input's own resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from fcnlab.config import Config
from fcnlab.data.io import image_to_tensor, read_image
from fcnlab.data.transforms import normalize
from fcnlab.inference.loading import load_trained
from fcnlab.inference.metadata import ModelMetadata
from fcnlab.inference.onnx_backend import OnnxModel
from fcnlab.inference.sliding import Forward, padded_forward, sliding_window
from fcnlab.inference.tta import TTA, resize_logits, tta_logits
from fcnlab.runtime.precision import main_output

ImageInput = str | Path | torch.Tensor | np.ndarray | Image.Image


@dataclass
class Prediction:
    """One image's result: ``labels`` (H, W) int64 and, when asked for, ``probs`` (K, H, W)."""

    labels: torch.Tensor
    probs: torch.Tensor | None = None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else Apple's MPS, else the CPU."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_image_tensor(image: ImageInput) -> torch.Tensor:
    """An image as float32 (3, H, W) RGB in [0, 1].

    Paths are read with :func:`fcnlab.data.io.read_image` and PIL images converted with
    :func:`fcnlab.data.io.image_to_tensor`, as the data sets read their images: stored pixel
    order (EXIF orientation not applied, so predictions line up with masks drawn on the stored
    pixels) and 16-bit images scaled, not clipped. Arrays and tensors may be (H, W, 3) or
    (3, H, W) uint8 (0..255) or float ([0, 1]), or (H, W) grey. A (3, H, W)-or-(H, W, 3)
    ambiguity is settled in favour of channels first.
    """
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return image_to_tensor(image)
    # A copy of arrays: PIL's and memory-mapped ones are read-only, which torch warns about.
    tensor = (
        torch.from_numpy(np.array(image))
        if isinstance(image, np.ndarray)
        else torch.as_tensor(image)
    )
    if tensor.dim() == 2:
        tensor = tensor[None].expand(3, -1, -1)
    elif tensor.dim() == 3 and tensor.shape[0] != 3 and tensor.shape[-1] == 3:
        tensor = tensor.permute(2, 0, 1)
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(
            f"an image must be (3, H, W), (H, W, 3) or (H, W); got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype == torch.uint8:
        return tensor.float().div_(255)
    if not tensor.is_floating_point():
        raise ValueError(f"an image must be uint8 or floating point, got {tensor.dtype}")
    return tensor.float()


def model_forward(model: nn.Module) -> Forward:
    """A forward function returning the logits of ``model`` at its input's size."""

    def forward(images: torch.Tensor) -> torch.Tensor:
        return resize_logits(main_output(model(images)), images.shape[-2:])

    return forward


class Predictor:
    """A trained segmentation model ready for images of any size.

    ``model`` is a checkpoint or weights path (``.pt``, ``.safetensors``; ``config`` names the
    run's config when the file cannot), an exported ``.onnx`` file (run with onnxruntime), or an
    ``nn.Module`` (with ``metadata`` for its normalisation and classes; without, images are used
    as given in [0, 1]).

    ``window`` (pixels, int or (h, w)) switches on sliding-window inference with ``overlap``;
    ``tta`` averages flipped and rescaled copies; ``multiple`` pads every network input to a
    multiple of it (for networks that need divisible sizes), and the result is cropped back.
    ``window_progress`` is called with (windows done, windows in all) as sliding windows run
    (a progress bar on a large image).
    """

    def __init__(
        self,
        model: nn.Module | str | Path,
        device: str | torch.device = "auto",
        *,
        metadata: ModelMetadata | None = None,
        config: Config | str | Path | None = None,
        window: int | tuple[int, int] | None = None,
        overlap: float = 0.33,
        tta: TTA | None = None,
        multiple: int | None = None,
        batch_size: int = 4,
        window_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.window, self.overlap = window, overlap
        self.window_progress = window_progress
        self.tta = tta or TTA()
        self.multiple, self.batch_size = multiple, batch_size
        if isinstance(model, nn.Module):
            self.model: nn.Module | None = model.to(self.device).eval()
            self._forward = model_forward(self.model)
            self.metadata = metadata
        elif Path(model).suffix == ".onnx":
            onnx_model = OnnxModel(model)
            self.model, self.device = None, torch.device("cpu")
            self._forward = onnx_model
            self.metadata = metadata or onnx_model.metadata
        else:
            loaded, found = load_trained(model, config)
            self.model = loaded.to(self.device)
            self._forward = model_forward(self.model)
            self.metadata = metadata or found

    @property
    def backend(self) -> str:
        """``"torch"`` or ``"onnxruntime"``."""
        return "torch" if self.model is not None else "onnxruntime"

    def _network(self, images: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            return padded_forward(self._forward, images, self.multiple)
        return sliding_window(
            self._forward,
            images,
            self.window,
            self.overlap,
            self.batch_size,
            self.multiple,
            self.window_progress,
        )

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, K, H, W) of images (N, 3, H, W) in [0, 1], on the CPU."""
        if self.metadata is not None:
            images = normalize(images, self.metadata.mean, self.metadata.std)
        images = images.to(self.device)
        return tta_logits(self._network, images, self.tta).cpu()

    def predict(
        self, images: ImageInput | Sequence[ImageInput], probs: bool = False
    ) -> Prediction | list[Prediction]:
        """Labels (and softmax probabilities when ``probs``) at each image's resolution.

        One image gives one :class:`Prediction`; a list, or a (N, 3, H, W) tensor, gives a list.
        Images of different sizes are run one at a time.
        """
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            return self._predict_batch(to_batch(images), probs)
        if isinstance(images, (list, tuple)):
            return [self._predict_batch(to_image_tensor(x)[None], probs)[0] for x in images]
        return self._predict_batch(to_image_tensor(images)[None], probs)[0]

    def _predict_batch(self, images: torch.Tensor, probs: bool) -> list[Prediction]:
        logits = self.logits(images)
        labels = logits.argmax(dim=1)
        scores = logits.softmax(dim=1) if probs else [None] * len(labels)
        return [Prediction(label, score) for label, score in zip(labels, scores, strict=True)]


def to_batch(images: torch.Tensor) -> torch.Tensor:
    """A (N, 3, H, W) uint8 or float tensor as float32 in [0, 1]."""
    if images.shape[1] != 3:
        raise ValueError(f"a batch must be (N, 3, H, W), got shape {tuple(images.shape)}")
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()
