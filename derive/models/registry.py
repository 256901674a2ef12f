"""A small timm-style model registry: `create_model(name, ...)`, `list_models()` over the factories
registered with `@register_model` (derive.models.entries), the built-in zoo's included."""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys

import torch.nn as nn

from derive.errors import UserError
from derive.modelargs import check_factory_arguments
from derive.models import zoo  # noqa: F401  (registers the built-in networks on import)
from derive.models.entries import REGISTERED, ModelEntry, register_model
from derive.models.memory import check_mode, set_memory

ZOO_HINT = (
    "; a zoo network is fixed by its name: for another depth or other coefficients, train a "
    "generated file such as generated/heavyball_conv.py with --model-arg"
)


def list_models(dataset: str | None = None) -> list[str]:
    """Names of all registered models (optionally only 'cifar' or 'imagenet' ones), sorted."""
    return sorted(n for n, e in REGISTERED.items() if dataset is None or e.dataset == dataset)


def model_entry(name: str) -> ModelEntry:
    """The registry entry for `name`; UserError with the nearest names when unknown."""
    try:
        return REGISTERED[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTERED), n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; see `derive.models.list_models()`"
        )
        raise UserError(f"unknown model {name!r}{hint}") from None


def create_model(
    name: str, num_classes: int | None = None, memory: str = "standard", **kwargs: object
) -> nn.Module:
    """Build a registered model; `num_classes` defaults to 10 (CIFAR) or 1000 (ImageNet).

    `memory` ("standard", "checkpoint" or "reversible") is how its training steps keep
    activations (derive.models.memory); UserError when the model cannot run that way.
    """
    check_mode(memory)
    entry = model_entry(name)
    if num_classes is None:
        num_classes = entry.default_num_classes
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes!r}")
    kwargs = check_factory_arguments(entry.factory, kwargs, name, hint=ZOO_HINT)
    return set_memory(entry.factory(num_classes=num_classes, **kwargs), memory, name=name)


def resolve_model(
    spec: str, num_classes: int | None = None, memory: str = "standard", **kwargs: object
) -> nn.Module:
    """A zoo name (`create_model`) or a path to a Python file that defines `create_model(num_classes)`.

    Files written by `derive network` (conv form) define `create_model` too, so
    `derive train path/to/ALGO_conv.py` trains the network that ALGO inspires. `memory` is set
    on the built model (the file's `create_model` is not asked for it). `kwargs` go to the factory,
    checked against its signature first (derive.modelargs; UserError when they do not fit).
    """
    if spec.endswith(".py"):
        check_mode(memory)
        module = load_python_file(spec)
        factory = getattr(module, "create_model", None)
        if not callable(factory):
            raise UserError(f"{spec}: defines no create_model(num_classes=...) function")
        kwargs = check_factory_arguments(factory, kwargs, spec)
        model = factory(num_classes=10 if num_classes is None else num_classes, **kwargs)
        if memory == "standard" or not isinstance(model, nn.Module):
            return model  # a non-module is reported by the caller
        return set_memory(model, memory, name=spec)
    return create_model(spec, num_classes, memory, **kwargs)


def load_python_file(path: str) -> object:
    """Import a Python source file as a fresh module; UserError if it is missing or fails to import.

    Importing runs the file's code (docs/training.md says so where model files are described).
    """
    if not os.path.isfile(path):
        raise UserError(f"model file {path!r} does not exist")
    name = "derive_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the module may look itself up (generated code does)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's file is bad input (exiting included)
        sys.modules.pop(name, None)
        if isinstance(exc, SystemExit):
            raise UserError(
                f"cannot import {path!r}: it calls sys.exit({exc.code!r}) at import"
            ) from None
        raise UserError(f"cannot import {path!r}: {type(exc).__name__}: {exc}") from None
    return module


__all__ = [
    "ModelEntry",
    "create_model",
    "list_models",
    "load_python_file",
    "model_entry",
    "register_model",
    "resolve_model",
]
