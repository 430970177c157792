"""freeze_encoder / unfreeze_encoder / param_groups on a small hand-written encoder-decoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.freeze import (
    freeze_encoder,
    is_encoder_frozen,
    param_groups,
    unfreeze_encoder,
)


class Tiny(nn.Module):
    """conv-BN-ReLU encoder, conv-BN-ReLU decoder, 1x1 head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.decoder = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))


def _model() -> Tiny:
    torch.manual_seed(0)
    return Tiny()


def _batch() -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 3 + 1


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_frozen_encoder_gets_no_gradient_and_decoder_does() -> None:
    model = freeze_encoder(_model())
    model(_batch()).square().mean().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    assert is_encoder_frozen(model)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimizer_never_updates_a_frozen_encoder(optimizer: str) -> None:
    model = _model()
    groups = param_groups(model, encoder_lr_mult=1.0, weight_decay=0.1)
    if optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.AdamW(groups, lr=0.1)
    # Stage 1 trains everything and leaves gradients and momentum behind.
    model(_batch()).square().mean().backward()
    opt.step()
    freeze_encoder(model)
    encoder_before, decoder_before = _snapshot(model.encoder), _snapshot(model.decoder)
    for _ in range(2):
        opt.zero_grad(set_to_none=False)
        model(_batch()).square().mean().backward()
        opt.step()
    _assert_same(_snapshot(model.encoder), encoder_before)
    assert not torch.equal(model.decoder[0].weight, decoder_before["0.weight"])


def test_frozen_batch_norm_keeps_statistics_in_train_mode() -> None:
    model = freeze_encoder(_model())
    bn = model.encoder[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    before = _snapshot(model.encoder)
    decoder_mean = model.decoder[1].running_mean.clone()
    model.train()
    x = _batch()
    features = model.encoder(x)
    model(x)
    _assert_same(_snapshot(model.encoder), before)
    assert not bn.training
    # The decoder's batch norm is not frozen: it does update.
    assert not torch.equal(model.decoder[1].running_mean, decoder_mean)
    # Normalised with the running statistics, as in eval mode.
    conv = model.encoder[0](x)
    reference = F.batch_norm(
        conv, before["1.running_mean"], before["1.running_var"], bn.weight, bn.bias, False
    ).relu()
    torch.testing.assert_close(features, reference)


def test_unfreeze_restores_gradients_and_statistics_updates() -> None:
    model = unfreeze_encoder(freeze_encoder(freeze_encoder(_model())))
    bn = model.encoder[1]
    assert not is_encoder_frozen(model)
    assert all(p.requires_grad for p in model.parameters())
    assert not bn._forward_pre_hooks
    assert bn.training
    mean = bn.running_mean.clone()
    model(_batch()).square().mean().backward()
    assert not torch.equal(bn.running_mean, mean)
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_unfreeze_of_an_eval_model_leaves_batch_norm_in_eval() -> None:
    model = freeze_encoder(_model()).eval()
    unfreeze_encoder(model)
    assert not model.encoder[1].training
    model.train()
    assert model.encoder[1].training


def test_model_without_encoder_is_refused() -> None:
    with pytest.raises(TypeError, match="Sequential has no 'encoder'"):
        freeze_encoder(nn.Sequential(nn.Conv2d(1, 1, 1)))


def test_param_groups_partition_parameters_by_part_and_decay() -> None:
    model = _model()
    groups = param_groups(model, encoder_lr_mult=0.1, lr=0.5, weight_decay=1e-4)
    by_name = {g["name"]: g for g in groups}
    assert list(by_name) == ["encoder", "encoder_no_decay", "decoder", "decoder_no_decay"]

    def ids(*params: torch.Tensor) -> set[int]:
        return {id(p) for p in params}

    enc, dec, head = model.encoder, model.decoder, model.head
    assert ids(*by_name["encoder"]["params"]) == ids(enc[0].weight)
    assert ids(*by_name["encoder_no_decay"]["params"]) == ids(
        enc[0].bias, enc[1].weight, enc[1].bias
    )
    assert ids(*by_name["decoder"]["params"]) == ids(dec[0].weight, head.weight)
    assert ids(*by_name["decoder_no_decay"]["params"]) == ids(
        dec[0].bias, dec[1].weight, dec[1].bias, head.bias
    )
    assert [g["lr"] for g in groups] == pytest.approx([0.05, 0.05, 0.5, 0.5])
    assert [g["lr_mult"] for g in groups] == [0.1, 0.1, 1.0, 1.0]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0, 1e-4, 0.0]


def test_param_groups_give_the_encoder_a_scaled_step() -> None:
    model = _model()
    groups = param_groups(model, encoder_lr_mult=0.25, lr=0.2)
    opt = torch.optim.SGD(groups, lr=1.0, weight_decay=0.5)
    before = _snapshot(model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    after = model.state_dict()
    # Hand-worked SGD step: w - lr * mult * (grad + wd * w), with no decay for biases and BN.
    expected = {
        "encoder.0.weight": before["encoder.0.weight"]
        - 0.05 * (1 + 0.5 * before["encoder.0.weight"]),
        "encoder.0.bias": before["encoder.0.bias"] - 0.05,
        "encoder.1.weight": before["encoder.1.weight"] - 0.05,
        "decoder.0.weight": before["decoder.0.weight"]
        - 0.2 * (1 + 0.5 * before["decoder.0.weight"]),
        "head.bias": before["head.bias"] - 0.2,
    }
    for key, value in expected.items():
        torch.testing.assert_close(after[key], value)


def test_shared_parameter_is_listed_once_with_the_encoder() -> None:
    model = _model()
    model.head.weight = model.encoder[0].weight  # tied, shapes aside; only the grouping matters
    groups = param_groups(model)
    listed = [id(p) for g in groups for p in g["params"]]
    assert len(listed) == len(set(listed)) == len(list(model.parameters()))
    encoder_ids = {id(p) for g in groups if g["name"].startswith("encoder") for p in g["params"]}
    assert id(model.encoder[0].weight) in encoder_ids
    assert not any("lr" in g or "weight_decay" in g for g in groups if g["name"] == "decoder")


def test_negative_encoder_lr_mult_is_refused() -> None:
    with pytest.raises(ValueError, match="encoder_lr_mult must be >= 0, got -1"):
        param_groups(_model(), encoder_lr_mult=-1)
