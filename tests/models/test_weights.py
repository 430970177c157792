"""Weight loading: every source loads exactly, mismatches are reported, bad paths explained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fcnlab.models import build_encoder, load_weights, read_state_dict
from fcnlab.runtime import CheckpointError


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def random_state(module: nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: torch.randn_like(v.float()).to(v.dtype) for k, v in module.state_dict().items()}


def assert_loaded(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors", None])
def test_loads_every_source_exactly(tmp_path: Path, suffix: str | None) -> None:
    state = random_state(tiny())
    source: object = state
    if suffix == ".safetensors":
        source = tmp_path / "w.safetensors"
        save_file(state, str(source))
    elif suffix is not None:
        source = tmp_path / f"w{suffix}"
        torch.save(state, source)
    module = load_weights(tiny(), source)  # type: ignore[arg-type]
    assert_loaded(module, state)


def test_training_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    state = random_state(tiny())
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pth")
    assert read_state_dict(tmp_path / "ckpt.pth").keys() == state.keys()


def test_pth_is_read_with_weights_only(tmp_path: Path) -> None:
    # weights_only=True refuses pickled arbitrary objects such as a module.
    torch.save(tiny(), tmp_path / "module.pth")
    with pytest.raises(CheckpointError) as error:
        read_state_dict(tmp_path / "module.pth")
    assert str(error.value) == (
        f"weights file '{tmp_path / 'module.pth'}' holds Python objects "
        "(torch.nn.modules.container.Sequential) besides tensors and plain data; fcnlab loads "
        "only those, so that a file cannot run code: save the model's state_dict() instead"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.pth", b"encoder weights from the lab\n", "is not a PyTorch checkpoint: torch.save"),
        ("half.pth", b"PK\x03\x04 cut off", "cannot be read: it is corrupt or truncated"),
        ("w.safetensors", b"{not a header", "is not a readable .safetensors file"),
    ],
)
def test_encoder_weights_that_cannot_be_read_are_one_sentence(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        build_encoder("vgg16", tmp_path / name, width=0.125)
    text = str(error.value)
    assert text.startswith(f"weights file '{tmp_path / name}' {message}")
    assert "\n" not in text and "weights_only=False" not in text


def test_missing_keys_listed_ten_then_counted() -> None:
    module = nn.Sequential(*[nn.Linear(1, 1) for _ in range(6)])  # 12 keys
    with pytest.raises(ValueError) as info:
        load_weights(module, {})
    keys = [f"{i}.{p}" for i in range(6) for p in ("weight", "bias")]
    expected = f"missing keys (12): {', '.join(keys[:10])} and 2 more"
    assert expected in str(info.value)
    assert "the given state dict" in str(info.value)


def test_unexpected_keys_and_shape_mismatch_are_reported(tmp_path: Path) -> None:
    state = random_state(tiny())
    state["2.weight"] = torch.zeros(3, 4, 1, 1)
    state["extra.bias"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    message = (
        f"weights '{tmp_path / 'bad.pth'}' do not fit Sequential: unexpected keys (1): "
        "extra.bias; shape mismatches (1): 2.weight is (3, 4, 1, 1) in the weights but "
        "(2, 4, 1, 1) in the model"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_weights(tiny(), tmp_path / "bad.pth")


def test_old_checkpoints_without_num_batches_tracked_load() -> None:
    state = random_state(tiny())
    del state["1.num_batches_tracked"]
    module = load_weights(tiny(), state)
    assert module[1].num_batches_tracked.item() == 0
    torch.testing.assert_close(module[1].running_var, state["1.running_var"])


def test_bad_paths_are_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth' does not exist"):
        read_state_dict(tmp_path / "nowhere.pth")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"suffix '\.npz'; expected \.pth, \.pt or \.safetensors"):
        read_state_dict(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="not tensors: a"):
        read_state_dict({"a": 1})  # type: ignore[dict-item]


def test_build_encoder_loads_weights_strictly(tmp_path: Path) -> None:
    reference = build_encoder("vgg16", width=0.125)
    state = random_state(reference)
    save_file(state, str(tmp_path / "vgg.safetensors"))
    assert_loaded(build_encoder("vgg16", tmp_path / "vgg.safetensors", width=0.125), state)
    with pytest.raises(ValueError, match=r"shape mismatches \(26\)"):
        build_encoder("vgg16", tmp_path / "vgg.safetensors", width=0.25)
