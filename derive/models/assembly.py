"""Stems, stage plans and heads around the generated blocks: CIFAR and ImageNet networks.

A generated conv module (generated/ALGO_conv.py) decides how a stage's blocks combine T and the
history; this module decides what T is (ResNet or DenseNet branches), how many blocks each stage
has, the widths, the down-sampling and the classifier. `network_from_module` is what a
generated module's `create_model` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from derive.errors import UserError
from derive.models.branches import (
    BasicBranch,
    Bottleneck,
    DenseUnit,
    PadShortcut,
    PreActBasicBranch,
    PreActBottleneck,
    PreActivation,
    ProjectionShortcut,
    Transition,
    conv1x1,
    conv3x3,
)
from derive.models.init import paper_init


class Network(nn.Module):
    """stem → stages → head, the shape of every network in the zoo."""

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def classifier(channels: int, num_classes: int, pre: Sequence[nn.Module] = ()) -> nn.Sequential:
    """(BN-ReLU for DenseNet) → global average pool → linear."""
    return nn.Sequential(
        *pre, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
    )


Coefficients = Mapping[str, object] | Callable[[int], Mapping[str, object]]


def _block_coefficients(
    module: ModuleType,
    k: int,
    algorithm_coefficients: Mapping[str, float],
    coefficients: Coefficients,
) -> dict[str, object]:
    """The algorithm's coefficients for block k, overridden by `coefficients` (a dict or k → dict)."""
    if callable(coefficients):
        coefficients = coefficients(k)
    try:
        derived = module.block_coefficients(k, **algorithm_coefficients)
    except TypeError as exc:
        raise UserError(str(exc)) from None
    unknown = sorted(set(coefficients) - set(derived))
    if unknown:
        raise UserError(f"unknown engineering coefficient(s) {unknown}; known: {sorted(derived)}")
    return {**derived, **coefficients}


def residual_stage(
    module: ModuleType,
    make_branch: Callable[[int, int], nn.Module],
    blocks: int,
    shortcut: nn.Module | None,
    *,
    coefficients: Coefficients,
    modes: Mapping[str, str],
    algorithm_coefficients: Mapping[str, float],
    post_activation: Callable[[torch.Tensor], torch.Tensor] | None,
) -> nn.Module:
    """A stage of `blocks` blocks of a lagged or two-path module; block k gets T = make_branch(k, ·)."""
    if module.FORM == "twopath":
        return module.Stage(
            [
                module.Block(
                    make_branch(k, 0),
                    make_branch(k, 1),
                    _block_coefficients(module, k, algorithm_coefficients, coefficients),
                    modes,
                    post_activation,
                )
                for k in range(blocks)
            ],
            shortcut,
        )
    blocks_list = [
        module.Block(
            make_branch(k, 0),
            _block_coefficients(module, k, algorithm_coefficients, coefficients),
            modes,
            post_activation,
        )
        for k in range(blocks)
    ]
    if hasattr(module, "output_weights"):  # the algorithm returns a combination of iterates
        return module.Stage(blocks_list, shortcut, module.output_weights(**algorithm_coefficients))
    return module.Stage(blocks_list, shortcut)


def cifar_resnet(
    module: ModuleType,
    *,
    depth: int = 56,
    num_classes: int = 10,
    coefficients: Coefficients | None = None,
    modes: Mapping[str, str] | None = None,
    algorithm_coefficients: Mapping[str, float] | None = None,
    post_activation: bool = True,
    widths: Sequence[int] = (16, 32, 64),
) -> Network:
    """He et al.'s CIFAR ResNet shape (6n + 2 layers, shortcut "A") around `module`'s blocks."""
    if depth < 8 or (depth - 2) % 6:
        raise UserError(
            f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (56, 110, ...), got {depth}"
        )
    n = (depth - 2) // 6
    stem = nn.Sequential(conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU())
    stages = []
    in_channels = widths[0]
    for i, channels in enumerate(widths):
        stride = 1 if i == 0 else 2
        shortcut = (
            None
            if stride == 1 and in_channels == channels
            else PadShortcut(in_channels, channels, stride)
        )

        def make_branch(
            k: int, path: int, c_in: int = in_channels, c: int = channels, s: int = stride
        ) -> nn.Module:
            return BasicBranch(c_in if k == 0 else c, c, s if k == 0 else 1)

        stages.append(
            residual_stage(
                module,
                make_branch,
                n,
                shortcut,
                coefficients=coefficients or {},
                modes=modes or {},
                algorithm_coefficients=algorithm_coefficients or {},
                post_activation=F.relu if post_activation else None,
            )
        )
        in_channels = channels
    return paper_init(Network(stem, stages, classifier(widths[-1], num_classes)))


def cifar_preact_resnet(
    module: ModuleType,
    *,
    depth: int = 56,
    num_classes: int = 10,
    bottleneck: bool = False,
    coefficients: Coefficients | None = None,
    modes: Mapping[str, str] | None = None,
    algorithm_coefficients: Mapping[str, float] | None = None,
    widths: Sequence[int] = (16, 32, 64),
) -> Network:
    """He et al.'s pre-activation CIFAR ResNet (Identity Mappings, 2016) around `module`'s blocks.

    No activation after the sum (ρ absent), so a heavy-ball stage of these blocks can be run
    backwards. The stem is one 3×3 convolution; the head is BN-ReLU, global average pool, linear.

    - Basic units (`bottleneck=False`, depth 6n + 2: 20, 56, 110): T = BN-ReLU-conv-BN-ReLU-conv;
      where the resolution halves, the parameter-free shortcut "A" on the raw stage input, as in
      the zoo's post-activation CIFAR ResNets.
    - Bottleneck units (depth 9n + 2: 164, 1001), as KaimingHe/resnet-1k-layers: stage outputs 4×
      the widths; where the dimensions increase, one BN-ReLU on the stage input is shared by the
      first branch and the 1×1 projection shortcut (a convolution without BN).
    """
    per_block = 9 if bottleneck else 6
    if depth < per_block + 2 or (depth - 2) % per_block:
        shape = (
            "9n + 2 with n >= 1 (164, 1001, ...)"
            if bottleneck
            else "6n + 2 with n >= 1 (20, 56, 110, ...)"
        )
        raise UserError(f"pre-activation CIFAR ResNet depth must be {shape}, got {depth}")
    n = (depth - 2) // per_block
    branch_type = PreActBottleneck if bottleneck else PreActBasicBranch
    expansion = branch_type.expansion
    stages: list[nn.Module] = []
    in_channels = widths[0]
    for i, channels in enumerate(widths):
        stride = 1 if i == 0 else 2
        out_channels = channels * expansion
        increases = stride != 1 or in_channels != out_channels
        shared = bottleneck and increases
        shortcut: nn.Module | None = None
        if shared:
            shortcut = conv1x1(in_channels, out_channels, stride)
        elif increases:
            shortcut = PadShortcut(in_channels, out_channels, stride)

        def make_branch(
            k: int,
            path: int,
            c_in: int = in_channels,
            c: int = channels,
            s: int = stride,
            own_preact: bool = not shared,
        ) -> nn.Module:
            if k == 0:
                return branch_type(c_in, c, s, preact=own_preact)
            return branch_type(c * expansion, c, 1)

        if shared:
            stages.append(PreActivation(in_channels))
        stages.append(
            residual_stage(
                module,
                make_branch,
                n,
                shortcut,
                coefficients=coefficients or {},
                modes=modes or {},
                algorithm_coefficients=algorithm_coefficients or {},
                post_activation=None,
            )
        )
        in_channels = out_channels
    head = classifier(in_channels, num_classes, pre=(nn.BatchNorm2d(in_channels), nn.ReLU()))
    return paper_init(Network(conv3x3(3, widths[0]), stages, head))


IMAGENET_RESNETS: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
    18: (BasicBranch, (2, 2, 2, 2)),
    34: (BasicBranch, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def imagenet_resnet(
    module: ModuleType,
    *,
    depth: int = 50,
    num_classes: int = 1000,
    coefficients: Coefficients | None = None,
    modes: Mapping[str, str] | None = None,
    algorithm_coefficients: Mapping[str, float] | None = None,
    post_activation: bool = True,
    stride_in_1x1: bool = True,
) -> Network:
    """He et al.'s ImageNet ResNet shape (7×7 stem, 4 stages, shortcut "B") around `module`'s blocks."""
    if depth not in IMAGENET_RESNETS:
        raise UserError(
            f"ImageNet ResNet depth must be one of {sorted(IMAGENET_RESNETS)}, got {depth}"
        )
    branch_type, counts = IMAGENET_RESNETS[depth]
    expansion = branch_type.expansion  # type: ignore[attr-defined]
    stem = nn.Sequential(
        nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
    )
    stages = []
    in_channels = 64
    for i, (channels, blocks) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
        stride = 1 if i == 0 else 2
        out_channels = channels * expansion
        shortcut = None
        if stride != 1 or in_channels != out_channels:
            shortcut = ProjectionShortcut(in_channels, out_channels, stride)

        def make_branch(
            k: int, path: int, c_in: int = in_channels, c: int = channels, s: int = stride
        ) -> nn.Module:
            first_in = c_in if k == 0 else c * expansion
            if branch_type is Bottleneck:
                return Bottleneck(first_in, c, s if k == 0 else 1, stride_in_1x1=stride_in_1x1)
            return BasicBranch(first_in, c, s if k == 0 else 1)

        stages.append(
            residual_stage(
                module,
                make_branch,
                blocks,
                shortcut,
                coefficients=coefficients or {},
                modes=modes or {},
                algorithm_coefficients=algorithm_coefficients or {},
                post_activation=F.relu if post_activation else None,
            )
        )
        in_channels = out_channels
    return paper_init(Network(stem, stages, classifier(in_channels, num_classes)))


def network_from_module(
    module: ModuleType, *, num_classes: int = 10, memory: str = "standard", **options: object
) -> nn.Module:
    """The default CIFAR network for a generated conv module (what its `create_model` returns).

    `memory` is how training steps keep activations (derive.models.memory.set_memory).
    """
    from derive.models.memory import set_memory

    form = getattr(module, "FORM", None)
    if form in ("lagged", "twopath"):
        network = cifar_resnet(module, num_classes=num_classes, **options)  # type: ignore[arg-type]
    elif form == "dense":
        network = cifar_densenet(module, num_classes=num_classes, **options)  # type: ignore[arg-type]
    else:
        raise UserError(f"{getattr(module, '__name__', module)} is not a generated conv module")
    return set_memory(network, memory, name=getattr(module, "ALGORITHM", "model"))


def dense_stage(
    module: ModuleType,
    in_channels: int,
    layers: int,
    growth: int,
    *,
    bottleneck_width: int | None,
    alpha: str,
    modes: Mapping[str, str],
    beta: float,
    algorithm_coefficients: Mapping[str, float],
) -> nn.Module:
    """A dense stage of `module` with DenseNet units; `alpha` is "derived" (the algorithm's) or "ones"."""
    coefficients = []
    for k in range(layers):
        values = _block_coefficients(module, k, algorithm_coefficients, {})
        if alpha == "ones":
            values = {**values, "alpha": [1.0] * (k + 1)}
        elif alpha != "derived":
            raise UserError(f"alpha must be 'derived' or 'ones', got {alpha!r}")
        coefficients.append(values)
    units = [DenseUnit(in_channels + k * growth, growth, bottleneck_width) for k in range(layers)]
    return module.Stage(units, in_channels, growth, coefficients, modes, beta)


def densenet(
    module: ModuleType,
    *,
    stem: nn.Module,
    stem_channels: int,
    layers: Sequence[int],
    growth: int,
    num_classes: int,
    bottleneck: bool,
    compression: float,
    alpha: str,
    modes: Mapping[str, str] | None,
    beta: float,
    algorithm_coefficients: Mapping[str, float] | None,
) -> Network:
    """DenseNet's shape (Huang et al. 2017) around `module`'s dense stages."""
    stages: list[nn.Module] = []
    channels = stem_channels
    for i, count in enumerate(layers):
        stages.append(
            dense_stage(
                module,
                channels,
                count,
                growth,
                bottleneck_width=4 * growth if bottleneck else None,
                alpha=alpha,
                modes=modes or {},
                beta=beta,
                algorithm_coefficients=algorithm_coefficients or {},
            )
        )
        channels += count * growth
        if i < len(layers) - 1:
            out_channels = int(channels * compression)
            stages.append(Transition(channels, out_channels))
            channels = out_channels
    head = classifier(channels, num_classes, pre=(nn.BatchNorm2d(channels), nn.ReLU()))
    return paper_init(Network(stem, stages, head))


def cifar_densenet(
    module: ModuleType,
    *,
    depth: int = 40,
    growth: int = 12,
    num_classes: int = 10,
    bottleneck: bool = False,
    compression: float = 1.0,
    alpha: str = "ones",
    modes: Mapping[str, str] | None = None,
    beta: float = 1.0,
    algorithm_coefficients: Mapping[str, float] | None = None,
) -> Network:
    """DenseNet for CIFAR: 3 dense stages of (depth − 4)/3 layers (halved with the bottleneck)."""
    per_stage = (depth - 4) // (6 if bottleneck else 3)
    if depth < 7 or (depth - 4) % (6 if bottleneck else 3):
        raise UserError(
            f"CIFAR DenseNet depth must be 3n + 4 (6n + 4 with bottleneck), got {depth}"
        )
    stem_channels = 2 * growth if bottleneck or compression < 1 else 16
    stem = nn.Conv2d(3, stem_channels, 3, padding=1, bias=False)
    return densenet(
        module,
        stem=stem,
        stem_channels=stem_channels,
        layers=(per_stage,) * 3,
        growth=growth,
        num_classes=num_classes,
        bottleneck=bottleneck,
        compression=compression,
        alpha=alpha,
        modes=modes,
        beta=beta,
        algorithm_coefficients=algorithm_coefficients,
    )


IMAGENET_DENSENETS: dict[int, tuple[int, tuple[int, ...]]] = {
    121: (32, (6, 12, 24, 16)),
    169: (32, (6, 12, 32, 32)),
    201: (32, (6, 12, 48, 32)),
}


def imagenet_densenet(
    module: ModuleType,
    *,
    depth: int = 121,
    num_classes: int = 1000,
    alpha: str = "ones",
    modes: Mapping[str, str] | None = None,
    beta: float = 1.0,
    algorithm_coefficients: Mapping[str, float] | None = None,
) -> Network:
    """DenseNet-BC for ImageNet (7×7 stem, bottleneck 4k, compression ½)."""
    if depth not in IMAGENET_DENSENETS:
        raise UserError(
            f"ImageNet DenseNet depth must be one of {sorted(IMAGENET_DENSENETS)}, got {depth}"
        )
    growth, layers = IMAGENET_DENSENETS[depth]
    stem = nn.Sequential(
        nn.Conv2d(3, 2 * growth, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(2 * growth),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
    )
    return densenet(
        module,
        stem=stem,
        stem_channels=2 * growth,
        layers=layers,
        growth=growth,
        num_classes=num_classes,
        bottleneck=True,
        compression=0.5,
        alpha=alpha,
        modes=modes,
        beta=beta,
        algorithm_coefficients=algorithm_coefficients,
    )


__all__ = [
    "Network",
    "cifar_densenet",
    "cifar_preact_resnet",
    "cifar_resnet",
    "imagenet_densenet",
    "imagenet_resnet",
    "network_from_module",
]
