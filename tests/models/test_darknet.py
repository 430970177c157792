"""DarkNet-19/53: the papers' layouts, and reading the original ``.weights`` files."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fcnlab.models import build_encoder, classifier_as_fcn, load_darknet_weights
from fcnlab.models.encoders.darknet import ConvBNLeaky

# YOLO9000, Table 6: (filters, size) of every convolution before the classifier; the stride-2
# steps are 2x2 max pools.
DARKNET19_TABLE = [(32, 3), (64, 3), (128, 3), (64, 1), (128, 3), (256, 3), (128, 1), (256, 3)]
DARKNET19_TABLE += [(512, 3), (256, 1), (512, 3), (256, 1), (512, 3)]
DARKNET19_TABLE += [(1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3)]


def darknet53_table() -> list[tuple[int, int, int]]:
    """YOLOv3, Table 1: (filters, size, stride), residual blocks repeated 1, 2, 8, 8, 4 times."""
    table = [(32, 3, 1)]
    for filters, repeats in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        table.append((filters, 3, 2))
        table += [(filters // 2, 1, 1), (filters, 3, 1)] * repeats
    return table


def convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_darknet19_follows_the_paper() -> None:
    with torch.device("meta"):
        encoder = build_encoder("darknet19")
    assert [(c.out_channels, c.kernel_size[0]) for c in convs(encoder)] == DARKNET19_TABLE
    assert all(c.stride == (1, 1) for c in convs(encoder))
    pools = [m for m in encoder.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(2, 2)] * 5


def test_darknet53_follows_the_paper() -> None:
    with torch.device("meta"):
        encoder = build_encoder("darknet53")
    got = [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs(encoder)]
    assert got == darknet53_table()
    assert len(got) == 52  # the convolutions of darknet53.conv.74


@pytest.mark.parametrize("name", ["darknet19", "darknet53"])
def test_every_conv_has_batch_norm_and_leaky_relu(name: str) -> None:
    encoder = build_encoder(name, width=0.0625)
    blocks = [m for m in encoder.modules() if isinstance(m, ConvBNLeaky)]
    assert len(blocks) == len(convs(encoder))
    for block in blocks:
        assert block.conv.bias is None
        assert block.bn.num_features == block.conv.out_channels
        assert isinstance(block.act, nn.LeakyReLU) and block.act.negative_slope == 0.1


def test_darknet53_residuals_add_their_input() -> None:
    encoder = build_encoder("darknet53", width=0.0625).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        downsample = encoder.stages[0][1](encoder.stages[0][0](x))
        block = encoder.stages[0][2]
        expected = downsample + block.expand(block.reduce(downsample))
        torch.testing.assert_close(block(downsample), expected)
        # With the second BN's output at zero the block is the identity.
        block.expand.bn.weight.zero_()
        block.expand.bn.bias.zero_()
        torch.testing.assert_close(block(downsample), downsample)


def darknet_file(
    path: Path, tensors: list[torch.Tensor], version: tuple[int, int, int], seen: int
) -> None:
    """Write the original Darknet format from the tensors given in file order."""
    major, minor, _ = version
    wide = major * 10 + minor >= 2 and major < 1000
    body = np.concatenate([t.detach().numpy().ravel() for t in tensors]).astype("<f4")
    path.write_bytes(
        struct.pack("<3i", *version) + struct.pack("<q" if wide else "<i", seen) + body.tobytes()
    )


def file_tensors(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(target in the module, known value) in Darknet's order, from the cfg-ordered layers."""
    torch.manual_seed(1)
    pairs = []
    for m in module.modules():
        if isinstance(m, ConvBNLeaky):
            for target in (m.bn.bias, m.bn.weight, m.bn.running_mean, m.bn.running_var):
                pairs.append((target, torch.rand(target.shape) + 0.5))
            pairs.append((m.conv.weight, torch.randn(m.conv.weight.shape)))
    return pairs


@pytest.mark.parametrize(
    ("version", "seen"), [((0, 2, 5), 2**40 + 7), ((0, 1, 0), 12345), ((1000, 0, 0), 9)]
)
def test_reads_darknet53_weights(tmp_path: Path, version: tuple[int, int, int], seen: int) -> None:
    encoder = build_encoder("darknet53", width=0.0625)
    pairs = file_tensors(encoder)
    darknet_file(tmp_path / "d53.weights", [v for _, v in pairs], version, seen)
    header = load_darknet_weights(encoder, tmp_path / "d53.weights")
    assert header == (*version, seen)
    for target, value in pairs:
        torch.testing.assert_close(target, value, rtol=0, atol=0)


def test_reads_darknet19_classifier_with_its_biased_last_conv(tmp_path: Path) -> None:
    model = classifier_as_fcn("darknet19", num_classes=10, width=0.0625)
    pairs = file_tensors(model)
    bias, weight = torch.randn(10), torch.randn(model.score.weight.shape)
    pairs += [(model.score.bias, bias), (model.score.weight, weight)]
    darknet_file(tmp_path / "d19.weights", [v for _, v in pairs], (0, 2, 0), 0)
    load_darknet_weights(model, tmp_path / "d19.weights")
    for target, value in pairs:
        torch.testing.assert_close(target, value, rtol=0, atol=0)


@pytest.mark.parametrize("extra", [-1, 1])
def test_wrong_length_says_how_many_floats(tmp_path: Path, extra: int) -> None:
    encoder = build_encoder("darknet19", width=0.0625)
    values = [v for _, v in file_tensors(encoder)]
    expected = sum(v.numel() for v in values)
    flat = torch.cat([v.ravel() for v in values])
    flat = flat[:extra] if extra < 0 else torch.cat([flat, torch.zeros(extra)])
    darknet_file(tmp_path / "bad.weights", [flat], (0, 2, 0), 0)
    message = f"holds {expected + extra} floats after its 20-byte header but DarkNetEncoder"
    with pytest.raises(ValueError, match=re.escape(message) + rf".* expects {expected}"):
        load_darknet_weights(encoder, tmp_path / "bad.weights")


def test_truncated_header(tmp_path: Path) -> None:
    (tmp_path / "short.weights").write_bytes(struct.pack("<3i", 0, 2, 0))
    with pytest.raises(ValueError, match="12 bytes, too short for a Darknet header"):
        load_darknet_weights(build_encoder("darknet19", width=0.0625), tmp_path / "short.weights")
