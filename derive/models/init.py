"""The papers' initialisation (appendix D): He for convolutions, Xavier for the classifier."""

from __future__ import annotations

import torch.nn as nn


def paper_init(model: nn.Module) -> nn.Module:
    """He-normal (fan_out, ReLU) convolutions, Xavier-uniform linear layers, BN to (1, 0); in place."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    return model
