"""Run an exported ONNX model with onnxruntime: no fcnlab model code, only the file.

:class:`OnnxModel` is a forward function (N, 3, H, W) -> (N, K, H, W) on CPU tensors with the
file's :class:`~fcnlab.inference.metadata.ModelMetadata`, so :class:`~fcnlab.inference.Predictor`
drives it exactly as it drives a PyTorch model (sliding window, TTA, colours);
:meth:`OnnxModel.outputs` returns every named output of the graph (a detector's head maps).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from fcnlab.inference.metadata import METADATA_KEY, ModelMetadata

EXPORT_EXTRA = "pip install 'fcnlab[export]'"


def require_export_extra(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (onnx, onnxruntime, onnxscript) or raise an ImportError saying which
    optional extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{purpose} needs the optional package {module!r}, which is not installed; "
            f"install the export extra: {EXPORT_EXTRA}"
        ) from None


class OnnxModel:
    """An ``.onnx`` file written by ``fcnlab export`` loaded into an onnxruntime session;
    ``threads`` sets its intra-op threads (default onnxruntime's: one per physical core)."""

    def __init__(
        self, path: str | Path, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        ort = require_export_extra("onnxruntime", "running an ONNX model")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {str(self.path)!r} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: shape-inference notes are not news
        # Idle threads sleep instead of spinning: what follows a run (a detector's decoding,
        # the blending of sliding windows) is PyTorch work that needs the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ValueError(f"{str(self.path)!r} is not a loadable ONNX model ({error})") from None
        custom = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in custom:
            raise ValueError(
                f"{str(self.path)!r} has no {METADATA_KEY!r} metadata (classes, palette, "
                "mean/std); export it with `fcnlab export --format onnx`"
            )
        self.metadata = ModelMetadata.from_json(custom[METADATA_KEY], str(self.path))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output of the graph by name, as CPU tensors, for normalised images (N, 3, H, W)."""
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        found = self.session.run(None, {self.input_name: array})
        return {
            name: torch.from_numpy(value)
            for name, value in zip(self.output_names, found, strict=True)
        }

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, K, H, W) for normalised images (N, 3, H, W), as a CPU float32 tensor."""
        return self.outputs(images)[self.output_names[0]]
