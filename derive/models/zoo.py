"""The built-in zoo (contract 5): the papers' networks and their baselines, from generated code.

Every network here is a setting of a generated engineering form (generated/*_conv.py):
ResNet and HBNet are heavy ball's (C1) (post-activation as in the papers, or pre-activation as in
He et al.'s Identity Mappings, 2016: preresnet*, prehbnet*, the invertible HBNets), DenseNet and AGDNet the all-history AGD's (C3)/(C6),
DMRNet and the ADMM net ADMM's (C5), the plain CNN gradient descent's. Baselines are special cases
of the same code, never a hand-written twin.
"""

from __future__ import annotations

from torch import nn

from derive.codegen.loader import load_generated
from derive.models.assembly import (
    cifar_densenet,
    cifar_preact_resnet,
    cifar_resnet,
    imagenet_densenet,
    imagenet_resnet,
)
from derive.models.registry import register_model

RESNET = {"coefficients": {"beta1": 1.0, "beta2": 0.0}, "modes": {"beta2": "pruned"}}
"""ResNet: β₁ = 1, β₂ = 0 (pruned) in (C1)."""

HBNET = {"coefficients": {"beta1": 1.0, "beta2": -1.0}}
"""HBNet (SCIS C.1): β₁ = 1, β₂ = −1 in (C1)."""

PLAIN_FIRST = (
    "the first block of each stage is a plain block, z₁ = {z1} (z₋₁ = z₀ cancels the shortcut)"
)
"""What HBNet's restart at z₋₁ = z₀ makes of each stage's first block (docs/algorithms.md, Stages)."""

DENSENET = {"alpha": "ones", "modes": {"beta": "pruned"}}
"""DenseNet: α = 1, β = 0 (pruned) in (C3)."""

AGDNET = {"alpha": "ones", "modes": {"alpha": "learnable"}, "beta": 0.1}
"""AGDNet (SCIS C.2, (C6)): learnable α (initialised at 1, i.e. DenseNet), h from (5), β = 0.1."""


def _dmrnet(k: int) -> dict[str, list[float]]:
    """DMRNet (Zhao et al.): α_{k+1}^t = β_{k+1}^t = ½ for t = k and 0 otherwise, in (C5)."""
    last = [0.0] * k + [0.5]
    return {"alpha": last, "beta": last}


def _heavyball() -> object:
    return load_generated("heavyball_conv")


def _agd() -> object:
    return load_generated("nesterov2_conv")


def _register_cifar_resnets() -> None:
    for depth in (20, 56, 110):
        _register(
            f"resnet{depth}",
            "cifar",
            f"ResNet-{depth} (He et al. 2016): (C1) with β₁ = 1, β₂ = 0",
            lambda num_classes, d=depth: cifar_resnet(
                _heavyball(), depth=d, num_classes=num_classes, **RESNET
            ),
        )
        _register(
            f"hbnet{depth}",
            "cifar",
            f"HBNet-{depth} (SCIS C.1): (C1) with β₁ = 1, β₂ = −1, ReLU after the sum "
            f"(not invertible); {PLAIN_FIRST.format(z1='ReLU(T(x))')}",
            lambda num_classes, d=depth: cifar_resnet(
                _heavyball(), depth=d, num_classes=num_classes, **HBNET
            ),
        )
    _register(
        "cnn56",
        "cifar",
        "Plain 56-layer CNN: gradient descent's z_{k+1} = ρ(T(z_k))",
        lambda num_classes: cifar_resnet(
            load_generated("gd_conv"), depth=56, num_classes=num_classes
        ),
    )
    _register(
        "dmrnet56",
        "cifar",
        "DMRNet-56 (two paths of 27 blocks): (C5) with α = β = ½ on the last iterate",
        lambda num_classes: cifar_resnet(
            load_generated("admm_conv"), depth=56, num_classes=num_classes, coefficients=_dmrnet
        ),
    )
    _register(
        "admmnet56",
        "cifar",
        "ADMM net-56 (two paths of 27 blocks): (C5) with the α, β of the first (z′) path of (13), "
        "α = −½ on z′₁…z′ₖ, β = ½ on z₁…zₖ plus ½ on zₖ, shared by both paths as (C5) prints them "
        "((13)'s z path has other weights)",
        lambda num_classes: cifar_resnet(
            load_generated("admm_conv"), depth=56, num_classes=num_classes
        ),
    )


PREACT_DEPTHS = {20: False, 56: False, 110: False, 164: True, 1001: True}
"""Pre-activation CIFAR depths and whether they use the bottleneck (He et al. 2016, Identity Mappings)."""


def _register_cifar_preact() -> None:
    for depth, bottleneck in PREACT_DEPTHS.items():
        unit = "bottleneck" if bottleneck else "basic"
        _register(
            f"preresnet{depth}",
            "cifar",
            f"Pre-activation ResNet-{depth} ({unit} units; He et al., Identity Mappings 2016): "
            "(C1) with β₁ = 1, β₂ = 0, no ρ",
            lambda num_classes, d=depth, b=bottleneck: cifar_preact_resnet(
                _heavyball(), depth=d, bottleneck=b, num_classes=num_classes, **RESNET
            ),
        )
        _register(
            f"prehbnet{depth}",
            "cifar",
            f"Pre-activation HBNet-{depth} ({unit} units): (C1) with β₁ = 1, β₂ = −1, no ρ; "
            f"{PLAIN_FIRST.format(z1='T(x)')}; invertible (memory='reversible')",
            lambda num_classes, d=depth, b=bottleneck: cifar_preact_resnet(
                _heavyball(), depth=d, bottleneck=b, num_classes=num_classes, **HBNET
            ),
        )


def _register_cifar_densenets() -> None:
    for depth in (40, 52):
        _register(
            f"densenet{depth}",
            "cifar",
            f"DenseNet (k = 12, L = {depth}): (C3) with α = 1, β = 0",
            lambda num_classes, d=depth: cifar_densenet(
                _agd(), depth=d, num_classes=num_classes, **DENSENET
            ),
        )
        _register(
            f"agdnet{depth}",
            "cifar",
            f"AGDNet (k = 12, L = {depth}): (C6), learnable α, β = 0.1",
            lambda num_classes, d=depth: cifar_densenet(
                _agd(), depth=d, num_classes=num_classes, **AGDNET
            ),
        )


def _register_imagenet() -> None:
    for depth in (34, 50, 101):
        _register(
            f"resnet{depth}",
            "imagenet",
            f"ResNet-{depth} for ImageNet: (C1) with β₁ = 1, β₂ = 0",
            lambda num_classes, d=depth: imagenet_resnet(
                _heavyball(), depth=d, num_classes=num_classes, **RESNET
            ),
        )
        _register(
            f"hbnet{depth}",
            "imagenet",
            f"HBNet-{depth} for ImageNet: (C1) with β₁ = 1, β₂ = −1; "
            + PLAIN_FIRST.format(z1="ReLU(T(x))"),
            lambda num_classes, d=depth: imagenet_resnet(
                _heavyball(), depth=d, num_classes=num_classes, **HBNET
            ),
        )
    _register(
        "densenet121",
        "imagenet",
        "DenseNet-121 (DenseNet-BC, k = 32): (C3) with α = 1, β = 0",
        lambda num_classes: imagenet_densenet(_agd(), num_classes=num_classes, **DENSENET),
    )
    _register(
        "agdnet121",
        "imagenet",
        "AGDNet-121: (C6) on DenseNet-121, learnable α, β = 0.1",
        lambda num_classes: imagenet_densenet(_agd(), num_classes=num_classes, **AGDNET),
    )


def _register(name: str, dataset: str, description: str, build: object) -> None:
    def factory(num_classes: int = 10 if dataset == "cifar" else 1000) -> nn.Module:
        return build(num_classes)  # type: ignore[operator]

    factory.__name__ = name
    factory.__doc__ = description
    register_model(
        name,
        dataset=dataset,
        num_classes=10 if dataset == "cifar" else 1000,
        description=description,
    )(factory)


_register_cifar_resnets()
_register_cifar_preact()
_register_cifar_densenets()
_register_imagenet()
