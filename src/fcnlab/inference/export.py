"""Export a trained model for deployment: ONNX, safetensors or TorchScript, metadata included.

Every export carries :class:`~fcnlab.inference.metadata.ModelMetadata` (recipe, classes,
palette, mean/std, input and output layout) under the key ``"fcnlab"``: in ONNX's
``metadata_props``, in the safetensors header, in TorchScript's extra files.

* ONNX: ``torch.onnx.export`` with the dynamo exporter (the TorchScript-based one cannot
  trace SegNet's and DeconvNet's ``max_unpool2d(output_size=...)`` in this torch), opset 18,
  dynamic batch, height and width; the file is checked with ``onnx.checker``. What the graph
  returns is the model's task's :class:`ExportGraph`: a segmentation model's logits, a
  detector's or an instance model's raw outputs by name (its decoding stays fcnlab's, applied
  to them).
* safetensors: the weights alone; :func:`fcnlab.inference.load_trained` rebuilds the model
  with ``build_model`` from the header's recipe and loads them.
* TorchScript: ``torch.jit.trace``, then checked at a second, odd size, because a trace can
  freeze sizes into the graph (unpooling models cannot be traced at all: use ONNX). PyTorch
  deprecates TorchScript (``torch.jit.save``/``load`` warn); fcnlab silences that warning and
  keeps the format for C++ consumers of libtorch, but ONNX is the path to prefer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnlab.config import Config
from fcnlab.inference.loading import load_trained
from fcnlab.inference.metadata import METADATA_KEY, OUTPUT_LAYOUT, ModelMetadata
from fcnlab.inference.onnx_backend import require_export_extra
from fcnlab.registry import Registry
from fcnlab.runtime.checkpoint import atomic_write
from fcnlab.runtime.precision import main_output

EXPORTERS: Registry[Path] = Registry("export format")
OPSET = 18
# Sample input for tracing: batch 2 so the batch axis is not specialised to 1; 64 pixels so
# every stride-32 encoder sees at least 2x2 at its deepest stage.
SAMPLE_SHAPE = (2, 3, 64, 64)
TORCHSCRIPT_METADATA = f"{METADATA_KEY}.json"


class LogitsOnly(nn.Module):
    """``model``'s main logits (N, K, H, W), whether it returns a tensor or ``{"out": ...}``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised image -> (N, K, H, W) logits."""
        return main_output(self.model(image))


class NamedOutputs(nn.Module):
    """The entries ``names`` of the dict ``model`` returns, as a tuple in that order."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, tuple(names)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(N, 3, H, W) normalised image -> the model's outputs ``names``."""
        outputs = self.model(image)
        return tuple(outputs[name] for name in self.names)


@dataclass(frozen=True)
class ExportGraph:
    """What an exported graph computes, as a model's task defines it.

    ``module`` maps the normalised image (N, 3, H, W) to a tuple of tensors, the graph's outputs
    ``names`` in order; ``layout`` describes them for consumers (the metadata's ``output``).
    ``sample_size`` (H, W) is the size the exporter traces at: large enough that no feature map
    of the network is 1 pixel high or wide there, since the exporter would freeze that 1 into
    the graph.
    """

    module: nn.Module
    names: tuple[str, ...]
    layout: dict[str, str]
    sample_size: tuple[int, int] = SAMPLE_SHAPE[2:]


def logits_graph(model: nn.Module) -> ExportGraph:
    """The graph of a model whose output is its logits: ``logits`` (N, K, H, W)."""
    return ExportGraph(LogitsOnly(model), ("logits",), dict(OUTPUT_LAYOUT))


def export_graph(model: nn.Module) -> ExportGraph:
    """What an export of ``model`` computes: its task's :class:`ExportGraph`."""
    from fcnlab.tasks import task_of

    return task_of(model).export_graph(model)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines and its notes about absent torchvision ops."""
    names = ("torch.onnx", "torch._export", "torch.export", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@EXPORTERS.register("onnx")
def export_onnx(
    model: nn.Module,
    metadata: ModelMetadata,
    path: str | Path,
    opset: int = OPSET,
    optimize: bool = True,
) -> Path:
    """Write ``model`` as ONNX with dynamic batch, height and width and ``metadata`` attached
    (its ``output`` describing the graph's outputs, see :func:`export_graph`); the saved file
    passes ``onnx.checker.check_model``.

    ``optimize`` runs onnxscript's graph optimiser (constant folding, redundant shape ops
    removed) before saving: a smaller graph for every runtime, at about 40% more export time.
    """
    onnx = require_export_extra("onnx", "ONNX export")
    require_export_extra("onnxscript", "ONNX export")
    if opset < 17:
        raise ValueError(f"ONNX opset {opset} is too old; fcnlab exports opset 17 or newer")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = export_graph(model.eval())
    shape = (*SAMPLE_SHAPE[:2], *graph.sample_size)
    sample = torch.randn(*shape, device=next(model.parameters()).device)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            graph.module.eval(),
            (sample,),
            dynamo=True,
            input_names=["image"],
            output_names=list(graph.names),
            dynamic_shapes=({0: "batch", 2: "height", 3: "width"},),
            opset_version=opset,
            optimize=optimize,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program; cannot attach metadata")
    metadata = dataclasses.replace(metadata, output=dict(graph.layout))
    program.model.metadata_props[METADATA_KEY] = metadata.to_json()
    with _quiet_exporter():
        program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path))
    return path


def onnx_metadata(path: str | Path) -> ModelMetadata:
    """The :class:`ModelMetadata` stored in an exported ``.onnx`` file."""
    onnx = require_export_extra("onnx", "reading ONNX metadata")
    model = onnx.load(str(path), load_external_data=False)
    props = {prop.key: prop.value for prop in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{str(path)!r} has no {METADATA_KEY!r} metadata")
    return ModelMetadata.from_json(props[METADATA_KEY], str(path))


@EXPORTERS.register("safetensors")
def export_safetensors(model: nn.Module, metadata: ModelMetadata, path: str | Path) -> Path:
    """Write ``model``'s weights alone as ``.safetensors`` with ``metadata`` in the header."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    payload = save(tensors, metadata={METADATA_KEY: metadata.to_json()})
    return atomic_write(path, lambda file: file.write(payload))


@EXPORTERS.register("torchscript")
def export_torchscript(model: nn.Module, metadata: ModelMetadata, path: str | Path) -> Path:
    """Trace ``model`` to TorchScript with ``metadata`` as an extra file; raise when the trace
    fails or does not reproduce the model at an odd size."""
    wrapped = LogitsOnly(model).eval()
    device = next(model.parameters()).device
    sample = torch.randn(*SAMPLE_SHAPE, device=device)
    odd = torch.randn(1, 3, SAMPLE_SHAPE[2] + 13, SAMPLE_SHAPE[3] - 7, device=device)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapped, sample, check_trace=False)
            matches = torch.allclose(traced(odd), wrapped(odd), atol=1e-4, rtol=1e-4)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"model {metadata.name!r} cannot be traced to TorchScript "
            f"({str(error).strip().splitlines()[0]}); export it with --format onnx"
        ) from None
    if not matches:
        raise ValueError(
            f"the TorchScript trace of {metadata.name!r} froze the {tuple(sample.shape[-2:])} "
            "sample's size into its graph; export it with --format onnx"
        )
    extra = {TORCHSCRIPT_METADATA: metadata.to_json()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return atomic_write(path, lambda file: torch.jit.save(traced, file, _extra_files=extra))


def load_torchscript(path: str | Path) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """A TorchScript export and its metadata."""
    extra = {TORCHSCRIPT_METADATA: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, ModelMetadata.from_json(extra[TORCHSCRIPT_METADATA], str(path))


def export_formats() -> list[str]:
    """The formats :func:`export_model` writes."""
    return EXPORTERS.names()


def export_model(
    model: nn.Module, metadata: ModelMetadata, fmt: str, path: str | Path, **options: Any
) -> Path:
    """Export ``model`` with ``metadata`` to ``path`` in format ``fmt`` (see ``export_formats``).

    The model's task says which formats hold it: a detector or an instance model exports as
    ONNX (its raw outputs, decoded by fcnlab after onnxruntime) or safetensors, not as
    TorchScript (whose trace carries one logits map)."""
    from fcnlab.tasks import task_of

    exporter = EXPORTERS.get(fmt)  # a KeyError naming the known formats
    task = task_of(model)
    if fmt not in task.export_formats:
        raise ValueError(
            f"{metadata.name!r} is a {task.noun}: it exports as "
            f"{' or '.join('--format ' + name for name in task.export_formats)} only"
        )
    return exporter(model.eval(), metadata, path, **options)


def export_checkpoint(
    checkpoint: str | Path,
    fmt: str,
    path: str | Path,
    config: Config | str | Path | None = None,
    **options: Any,
) -> tuple[Path, nn.Module, ModelMetadata]:
    """Load ``checkpoint`` (see :func:`~fcnlab.inference.load_trained`) and export it; returns
    the written path, the loaded model and its metadata."""
    if fmt not in EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(export_formats())}")
    model, metadata = load_trained(checkpoint, config)
    return export_model(model, metadata, fmt, path, **options), model, metadata
