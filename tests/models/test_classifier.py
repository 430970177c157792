"""Classifiers: torchvision's parameter counts and keys, and the convolutionalized classifier that
equals them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fcnlab.models import build_classifier, classifier_as_fcn, list_classifiers

VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("name", "count"),
    [("vgg16", 138_357_544), ("resnet18", 11_689_512), ("resnet50", 25_557_032)],
)
def test_parameter_counts_match_torchvision(name: str, count: int) -> None:
    with torch.device("meta"):
        assert n_params(build_classifier(name)) == count


def test_vgg16_classifier_keys_are_torchvisions() -> None:
    with torch.device("meta"):
        model = build_classifier("vgg16")
    keys = [f"features.{i}.{p}" for i in VGG16_CONVS for p in ("weight", "bias")]
    keys += [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    assert list(model.state_dict()) == keys
    assert model.classifier[0].weight.shape == (4096, 512 * 7 * 7)
    assert "resnet50" in list_classifiers()


def plain_vgg_head(state: dict[str, torch.Tensor], pool5: torch.Tensor) -> torch.Tensor:
    """The ImageNet classifier written out: flatten, (Linear, ReLU) x2, Linear; eval: no dropout."""
    x = torch.flatten(pool5, 1)
    x = F.relu(F.linear(x, state["classifier.0.weight"], state["classifier.0.bias"]))
    x = F.relu(F.linear(x, state["classifier.3.weight"], state["classifier.3.bias"]))
    return F.linear(x, state["classifier.6.weight"], state["classifier.6.bias"])


def test_vgg16_convolutionalized_equals_the_classifier() -> None:
    torch.manual_seed(0)
    classifier = build_classifier("vgg16", width=0.25).eval()
    state = classifier.state_dict()
    fcn = classifier_as_fcn("vgg16", state, width=0.25).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        pool5 = classifier.features(x)
        logits = plain_vgg_head(state, pool5)
        heat = fcn(x)
    assert pool5.shape[-2:] == (7, 7)
    assert heat.shape == (2, 1000, 1, 1)
    torch.testing.assert_close(heat[:, :, 0, 0], logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(classifier(x), logits, rtol=1e-4, atol=1e-5)


def test_vgg16_heat_map_on_a_larger_image() -> None:
    torch.manual_seed(1)
    classifier = build_classifier("vgg16", num_classes=5, width=0.0625).eval()
    state = classifier.state_dict()
    fcn = classifier_as_fcn("vgg16", state, num_classes=5, width=0.0625).eval()
    x = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        pool5 = classifier.features(x)
        heat = fcn(x)
        assert heat.shape == (1, 5, 256 // 32 - 6, 320 // 32 - 6)
        # Each score is the classifier applied to the 7x7 window of pool5 under it.
        for i in range(heat.shape[2]):
            for j in range(heat.shape[3]):
                window = pool5[:, :, i : i + 7, j : j + 7]
                torch.testing.assert_close(
                    heat[:, :, i, j], plain_vgg_head(state, window), rtol=1e-4, atol=1e-5
                )


def test_resnet_convolutionalized_averages_to_the_logits() -> None:
    torch.manual_seed(2)
    classifier = build_classifier("resnet18", num_classes=7).eval()
    state = classifier.state_dict()
    fcn = classifier_as_fcn("resnet18", state, num_classes=7).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        heat = fcn(x)
        features = fcn.encoder(x)[-1]
        pooled = features.mean(dim=(2, 3))
        logits = F.linear(pooled, state["fc.weight"], state["fc.bias"])
    assert heat.shape == (2, 7, 2, 3)
    torch.testing.assert_close(heat.mean(dim=(2, 3)), logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(classifier(x), logits, rtol=1e-4, atol=1e-5)


def test_own_state_dict_round_trips_and_mismatch_is_listed() -> None:
    fcn = classifier_as_fcn("vgg16", num_classes=3, width=0.0625, fc6_kernel=1)
    again = classifier_as_fcn("vgg16", fcn.state_dict(), num_classes=3, width=0.0625, fc6_kernel=1)
    assert torch.equal(again.encoder.fc[0].weight, fcn.encoder.fc[0].weight)
    classifier = build_classifier("vgg16", num_classes=3, width=0.0625)  # fc6 over 7x7
    with pytest.raises(ValueError, match=r"shape mismatches \(1\): encoder\.fc\.0\.weight"):
        classifier_as_fcn("vgg16", classifier.state_dict(), 3, width=0.0625, fc6_kernel=1)
