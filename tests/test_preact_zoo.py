"""The pre-activation zoo (He et al., Identity Mappings in Deep Residual Networks, 2016).

preresnet* / prehbnet* are built from generated/heavyball_conv.py; here they are checked against
twins written from the paper's description (and KaimingHe/resnet-1k-layers for the bottleneck
units), with weights copied in registration order, and against the paper's parameter counts.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_fixtures import single_thread  # noqa: F401
from zoo_meta import meta_model

from derive.codegen.loader import load_generated
from derive.codegen.papers import HBNET, RESNET
from derive.models import list_models
from derive.models.stats import count_parameters

PREACT = [f"{kind}{d}" for kind in ("preresnet", "prehbnet") for d in (20, 56, 110, 164, 1001)]


def test_preact_names_are_registered() -> None:
    assert set(PREACT) <= set(list_models("cifar"))


@pytest.mark.parametrize(
    "name,printed_millions", [("preresnet110", 1.7), ("preresnet164", 1.7), ("prehbnet164", 1.7)]
)
def test_counts_match_the_identity_mappings_paper(name: str, printed_millions: float) -> None:
    assert round(count_parameters(meta_model(name)) / 1e6, 1) == printed_millions


def test_resnet1001_count_is_the_papers_without_bn_affine_parameters() -> None:
    """The paper prints 10.2M for ResNet-1001: the convolutions and the classifier (10.18M);
    with the BatchNorm scales and shifts the network has 10.33M."""
    model = meta_model("preresnet1001")
    total = count_parameters(model)
    bn = sum(
        p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    assert round((total - bn) / 1e6, 1) == 10.2
    assert round(total / 1e6, 2) == 10.33


def test_bottleneck_count_matches_a_closed_form() -> None:
    """Counted by hand from the described ResNet-164 (n = 18 units per stage, 1×1 projections)."""
    n, total, c_in = 18, 3 * 16 * 9, 16
    for w in (16, 32, 64):
        out = 4 * w
        total += 2 * c_in + c_in * out  # the shared BN-ReLU and the projection shortcut
        for b in range(n):
            first = c_in if b == 0 else out
            total += (0 if b == 0 else 2 * first) + first * w  # (BN-ReLU) conv1x1
            total += 2 * w + w * w * 9 + 2 * w + w * out  # BN-ReLU conv3x3 BN-ReLU conv1x1
        c_in = out
    total += 2 * 256 + 256 * 10 + 10
    assert count_parameters(meta_model("preresnet164")) == total


def test_wrong_depth_is_a_clear_error() -> None:
    """The standalone file raises ValueError; derive train reports it as one line (exit 2)."""
    with pytest.raises(ValueError, match="9n \\+ 2"):
        load_generated("heavyball_conv").cifar_preact_resnet(depth=58, bottleneck=True)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        load_generated("heavyball_conv").cifar_preact_resnet(depth=21)


# ----------------------------------------------------------------- independent twins


class TwinUnit(nn.Module):
    """One pre-activation residual branch, as the paper draws it (Fig. 4(e)): (BN-ReLU-conv)×2 or ×3."""

    def __init__(self, c_in: int, c: int, stride: int, bottleneck: bool, own_preact: bool):
        super().__init__()
        if bottleneck:
            convs = [
                nn.Conv2d(c_in, c, 1, stride, bias=False),
                nn.Conv2d(c, c, 3, 1, 1, bias=False),
                nn.Conv2d(c, 4 * c, 1, bias=False),
            ]
        else:
            convs = [
                nn.Conv2d(c_in, c, 3, stride, 1, bias=False),
                nn.Conv2d(c, c, 3, 1, 1, bias=False),
            ]
        layers: list[nn.Module] = []
        for i, conv in enumerate(convs):
            if i or own_preact:
                layers.append(nn.BatchNorm2d(conv.in_channels))
            layers.append(conv)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.relu(layer(x)) if isinstance(layer, nn.BatchNorm2d) else layer(x)
        return x


class TwinPreAct(nn.Module):
    """Pre-activation CIFAR ResNet; `momentum` gives HBNet's z_{k+1} = T(z_k) + z_k − z_{k−1}."""

    def __init__(self, n: int, bottleneck: bool, widths: tuple[int, ...], momentum: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.stages = nn.ModuleList()
        c_in = widths[0]
        for i, w in enumerate(widths):
            out = 4 * w if bottleneck else w
            stride = 1 if i == 0 else 2
            changes = stride != 1 or c_in != out
            shared = bottleneck and changes
            stage = nn.Module()
            stage.pre = nn.BatchNorm2d(c_in) if shared else None
            stage.units = nn.ModuleList(
                TwinUnit(
                    c_in if b == 0 else out,
                    w,
                    stride if b == 0 else 1,
                    bottleneck,
                    not (shared and b == 0),
                )
                for b in range(n)
            )
            stage.project = nn.Conv2d(c_in, out, 1, stride, bias=False) if shared else None
            stage.pad = (out - c_in) if changes and not shared else 0
            stage.stride = stride
            self.stages.append(stage)
            c_in = out
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, 10)
        self.momentum = momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        for stage in self.stages:
            if stage.pre is not None:
                a = F.relu(stage.pre(z))
                s, first = stage.project(a), a
            else:
                s = z[:, :, :: stage.stride, :: stage.stride]
                s = F.pad(s, (0, 0, 0, 0, stage.pad // 2, stage.pad - stage.pad // 2))
                first = z
            prev = s  # z_{-1} = z_0 = S(stage input)
            z = stage.units[0](first) + s - (s if self.momentum else 0)
            for unit in stage.units[1:]:
                z, prev = unit(z) + z - (prev if self.momentum else 0), z
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn(z)), 1).flatten(1))


def _copy(source: nn.Module, target: nn.Module) -> None:
    for tensors in (
        (source.parameters(), target.parameters()),
        (source.buffers(), target.buffers()),
    ):
        pairs = list(zip(*tensors, strict=True))
        for a, b in pairs:
            assert a.shape == b.shape
            b.data.copy_(a.data)


@pytest.mark.parametrize("bottleneck,depth", [(False, 14), (True, 20)])
@pytest.mark.parametrize("momentum", [False, True])
def test_preact_networks_equal_their_twins(bottleneck: bool, depth: int, momentum: bool) -> None:
    torch.manual_seed(0)
    widths = (4, 6, 8)
    zoo = load_generated("heavyball_conv").cifar_preact_resnet(
        depth=depth,
        bottleneck=bottleneck,
        widths=widths,
        **(HBNET if momentum else RESNET),
    )
    n = (depth - 2) // (9 if bottleneck else 6)
    twin = TwinPreAct(n, bottleneck, widths, momentum)
    for p in zoo.parameters():  # non-trivial BN affine parameters too
        p.data.normal_()
    _copy(zoo, twin)
    x = torch.randn(3, 3, 16, 16)
    for mode in ("train", "eval"):
        getattr(zoo, mode)()
        getattr(twin, mode)()
        torch.testing.assert_close(zoo(x), twin(x))


def test_post_activation_hbnet_says_it_is_not_invertible() -> None:
    from derive.models.registry import model_entry

    assert "not invertible" in model_entry("hbnet56").description
    assert "invertible" in model_entry("prehbnet56").description
