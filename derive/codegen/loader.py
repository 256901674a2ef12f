"""Import the committed generated modules (generated/, shipped as `derive.generated`)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def generated_dir() -> Path:
    """generated/ of the installed package, or of the source checkout when run from it."""
    try:
        import derive.generated as package  # only an installed derive has it (see the except)

        return Path(package.__file__).parent
    except ImportError:
        return Path(__file__).resolve().parents[2] / "generated"


def load_generated(module: str) -> ModuleType:
    """`load_generated("heavyball_conv")` → the module generated/heavyball_conv.py."""
    qualified = f"derive.generated.{module}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name not in (qualified, "derive.generated"):
            raise
    if qualified in sys.modules:
        return sys.modules[qualified]
    path = generated_dir() / f"{module}.py"
    spec = importlib.util.spec_from_file_location(qualified, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ModuleNotFoundError(f"no generated module {module!r} in {path.parent}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = loaded
    spec.loader.exec_module(loaded)
    return loaded
