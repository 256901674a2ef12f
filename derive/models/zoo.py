"""The built-in zoo: the papers' networks and their baselines, the factories of the generated files.

Every network here is a factory function of a generated conv module (generated/ALGO_conv.py), as
derive.codegen.papers.ZOO lists them: `create_model("hbnet56")` is `heavyball_conv.hbnet56()`.
ResNet and HBNet are heavy ball's (C1) (post-activation as in the papers, or pre-activation as in
He et al.'s Identity Mappings, 2016: preresnet*, prehbnet*, the invertible HBNets), DenseNet and
AGDNet the all-history AGD's (C3)/(C6), DMRNet and the ADMM net ADMM's (C5), the plain CNN
gradient descent's. Baselines are special cases of the same code, never a hand-written twin.
"""

from __future__ import annotations

from torch import nn

from derive.codegen.loader import load_generated
from derive.codegen.papers import ZOO, ZooNetwork
from derive.models.entries import register_model


def _register(network: ZooNetwork) -> None:
    """Register `network` under its name; the generated module is imported on first use."""

    def factory(num_classes: int = network.num_classes, **readings: object) -> nn.Module:
        build = getattr(load_generated(f"{network.algorithm}_conv"), network.name)
        return build(num_classes=num_classes, **network.checked_readings(readings))

    factory.__name__ = network.name
    factory.__signature__ = network.signature()  # type: ignore[attr-defined]
    factory.__doc__ = network.description
    register_model(
        network.name,
        dataset=network.dataset,
        num_classes=network.num_classes,
        description=network.description,
    )(factory)


for _network in ZOO:
    _register(_network)
