"""`build_network`: a genotype's evaluation network, built from its generated code.

The source `derive nas network` would write is rendered in memory and imported as a module (one
per distinct source, cached), so the network in Python and the file on disk are the same code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import linecache
import sys
from types import ModuleType

from torch import nn

from derive.errors import UserError
from derive.nas.codegen import check_sizes, network_name, render_nas_network
from derive.nas.genotype import Genotype, load_genotype

_MODULES: dict[str, ModuleType] = {}


def network_module(
    genotype: Genotype | str, channels: int = 36, cells: int = 20, name: str | None = None
) -> ModuleType:
    """The generated module of `genotype` (a Genotype, a built-in name or a genotype.json path)."""
    if isinstance(genotype, Genotype):
        resolved, default_name = genotype, "genotype"
    else:
        resolved, default_name = load_genotype(genotype), network_name(genotype)
    source = render_nas_network(resolved, name or default_name, channels, cells)
    return load_source(source, name or default_name)


def load_source(source: str, name: str) -> ModuleType:
    """Import generated source as a module (registered in sys.modules, its lines in linecache)."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    if digest in _MODULES:
        return _MODULES[digest]
    qualified = f"derive_nas_network_{name}_{digest}"
    filename = f"<derive nas network {name} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    spec = importlib.util.spec_from_loader(qualified, loader=None, origin=filename)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = filename
    sys.modules[qualified] = module  # classes defined in it can be found (pickling, torch.compile)
    exec(compile(source, filename, "exec"), module.__dict__)  # our own generated code
    _MODULES[digest] = module
    return module


def build_network(
    genotype: Genotype | str,
    channels: int = 36,
    cells: int = 20,
    num_classes: int = 10,
    auxiliary: bool = False,
    drop_path: float = 0.0,
) -> nn.Module:
    """DARTS's NetworkCIFAR of `genotype` (a Genotype or its genotype.json), from the code `derive nas network` writes."""
    check_sizes(channels, cells)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not 0.0 <= drop_path < 1.0:
        raise UserError(f"drop_path must be in [0, 1), got {drop_path}")
    module = network_module(genotype, channels, cells)
    return module.create_model(num_classes, auxiliary=bool(auxiliary), drop_path=drop_path)


__all__ = ["build_network", "load_source", "network_module"]
