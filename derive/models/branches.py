"""The layer maps T of the engineering forms (SCIS appendix C), and the maps between stages.

T as in ResNet: conv-BN-ReLU-conv-BN (BasicBranch) or the bottleneck (Bottleneck), or their
pre-activation forms BN-ReLU-conv-BN-ReLU-conv (PreActBasicBranch, PreActBottleneck); T as in
DenseNet: BN-ReLU-conv (DenseUnit, optionally with the 1×1 bottleneck). The generated code decides
how T's outputs and the history combine; these modules are only T and the shortcuts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBranch(nn.Module):
    """T(z) = BN(conv(ReLU(BN(conv(z))))): the residual branch of ResNet-18/34/56/110."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(z)))))


class Bottleneck(nn.Module):
    """T(z) = BN(1×1(ReLU(BN(3×3(ReLU(BN(1×1(z)))))))), 4× expansion (ResNet-50/101).

    `stride_in_1x1=True` puts the stride on the first 1×1 convolution as in the original ResNet
    (He et al. 2016; 3.86 GFLOPs for ResNet-50, the figure SCIS Table 2 reports); False puts it on
    the 3×3 convolution (torchvision's "v1.5", 4.1 GFLOPs). Parameters are the same either way.
    """

    expansion = 4

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, stride_in_1x1: bool = True
    ) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_channels, channels, s1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, s3)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(z)))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class PreActBasicBranch(nn.Module):
    """T(z) = conv(ReLU(BN(conv(ReLU(BN(z)))))): the full pre-activation unit (He et al., Identity
    Mappings in Deep Residual Networks, 2016, Fig. 4(e)); `preact=False` leaves out the leading
    BN-ReLU when the stage applies it once for the branch and the shortcut together."""

    expansion = 1

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, preact: bool = True
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels) if preact else None
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.bn1 is not None:
            z = F.relu(self.bn1(z))
        return self.conv2(F.relu(self.bn2(self.conv1(z))))


class PreActBottleneck(nn.Module):
    """T(z) = 1×1(ReLU(BN(3×3(ReLU(BN(1×1(ReLU(BN(z))))))))), 4× expansion, the stride on the
    first 1×1: the pre-activation bottleneck of ResNet-164/1001 (He et al. 2016, Identity Mappings;
    KaimingHe/resnet-1k-layers). `preact=False` leaves out the leading BN-ReLU (see above)."""

    expansion = 4

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, preact: bool = True
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels) if preact else None
        self.conv1 = conv1x1(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.bn1 is not None:
            z = F.relu(self.bn1(z))
        out = self.conv2(F.relu(self.bn2(self.conv1(z))))
        return self.conv3(F.relu(self.bn3(out)))


class PreActivation(nn.Sequential):
    """BN-ReLU applied once to a stage's input, shared by its first branch and its projection
    shortcut (the units that increase dimensions in He et al.'s pre-activation ResNet-164/1001)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU())


class PadShortcut(nn.Module):
    """ResNet's parameter-free shortcut "A": subsample by `stride`, zero-pad the new channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.in_channels = in_channels
        self.extra = out_channels - in_channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(z, (0, 0, 0, 0, half, self.extra - half))


class ProjectionShortcut(nn.Sequential):
    """ResNet's shortcut "B": 1×1 convolution with stride, then BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class DenseUnit(nn.Module):
    """T of DenseNet: BN-ReLU-conv3×3 over the concatenated sources (BN-ReLU-1×1 first if bottleneck).

    `scale` (one factor per input channel) multiplies the input of the first convolution; it is
    folded into that convolution's weight, so per-source coefficients α^j cost a weight-sized
    multiply instead of an activation-sized one. Without a bottleneck the unit computes
    Σ_j α^j T_j(z_j) exactly (one convolution over the scaled sources); with one, the BN after the
    1×1 convolution normalises the overall size of α away in training mode, so only the ratios
    between the α^j matter there (docs/architecture.md).
    """

    def __init__(self, in_channels: int, growth: int, bottleneck_width: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        if bottleneck_width is None:
            self.conv1 = conv3x3(in_channels, growth)
            self.norm2 = None
            self.conv2 = None
        else:
            self.conv1 = conv1x1(in_channels, bottleneck_width)
            self.norm2 = nn.BatchNorm2d(bottleneck_width)
            self.conv2 = conv3x3(bottleneck_width, growth)

    def forward(self, features: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        out = F.relu(self.norm1(features))
        weight = self.conv1.weight if scale is None else self.conv1.weight * scale.view(1, -1, 1, 1)
        out = F.conv2d(out, weight, None, self.conv1.stride, self.conv1.padding)
        if self.conv2 is not None:
            out = self.conv2(F.relu(self.norm2(out)))
        return out


class Transition(nn.Sequential):
    """Between dense stages: BN-ReLU-conv1×1-avgpool2×2 (DenseNet)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            conv1x1(in_channels, out_channels),
            nn.AvgPool2d(2, 2),
        )
