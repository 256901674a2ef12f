"""The table of registered model factories: `ModelEntry` and the `@register_model` decorator.

Kept apart from the registry's look-ups (derive.models.registry) so that the built-in zoo
(derive.models.zoo) registers its networks here without importing the module that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn


@dataclass(frozen=True)
class ModelEntry:
    """A registered factory and what it is for."""

    name: str
    factory: Callable[..., nn.Module]
    dataset: str  # "cifar" or "imagenet"
    default_num_classes: int
    description: str


REGISTERED: dict[str, ModelEntry] = {}
"""Every registered factory by name: the built-in zoo's and any `@register_model` of a user's."""


def register_model(
    name: str, *, dataset: str = "cifar", num_classes: int = 10, description: str = ""
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `factory(num_classes=..., **kwargs) -> nn.Module` under `name`."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in REGISTERED:
            raise ValueError(f"model {name!r} registered twice")
        doc = description or (factory.__doc__ or "").strip().splitlines()[0:1]
        text = doc if isinstance(doc, str) else (doc[0] if doc else "")
        REGISTERED[name] = ModelEntry(name, factory, dataset, num_classes, text)
        return factory

    return wrap
