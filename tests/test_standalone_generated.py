"""A generated conv file is the whole network: copied alone into a folder, it runs without derive.

Each check copies one file into an empty folder and builds a network from it in a fresh interpreter
(`python -I -S`) whose import path holds only that folder, the standard library and torch's
site-packages, where `import derive` fails. Parameter counts are checked against
docs/results/models.md, whose figures the zoo's networks were counted for.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from derive.cli import main
from derive.codegen.loader import generated_dir

ROOT = Path(__file__).resolve().parents[1]
SITE_PACKAGES = str(Path(torch.__file__).resolve().parents[1])
ALLOWED_IMPORTS = {"__future__", "collections.abc", "math", "torch", "torch.nn.functional"}

RUN = """
import json, sys
folder, site, module_name, factory, arguments = sys.argv[1:6]
sys.path[:] = [p for p in sys.path if "-packages" not in p] + [folder, site]
try:
    import derive
except ImportError:
    derive_importable = False
else:
    derive_importable = True
import importlib
import torch
build = getattr(importlib.import_module(module_name), factory)
torch.manual_seed(0)
model = build(**json.loads(arguments)).eval()
with torch.no_grad():
    out = model(torch.randn(2, 3, 32, 32))
print(json.dumps({
    "derive_importable": derive_importable,
    "derive_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "derive"),
    "parameters": sum(p.numel() for p in model.parameters()),
    "shape": list(out.shape),
    "finite": bool(torch.isfinite(out).all()),
}))
"""

THREESTEP = """
name = "threestep"
title = "Heavy ball with a third lag"
states = ["x"]
[coefficients]
beta = 0.3
gamma = { default = -0.5, min = -1, max = 1 }
[update]
"x[k+1]" = "x[k] - grad(x[k]) + beta*(x[k] - x[k-1]) + gamma*x[k-2]"
[initial]
"x[-1]" = "x[0]"
"x[-2]" = "x[0]"
"""


def documented_parameters(name: str) -> int:
    """The parameter count docs/results/models.md gives the zoo network `name`."""
    table = (ROOT / "docs" / "results" / "models.md").read_text(encoding="utf-8")
    match = re.search(rf"^\| `{name}` \| \w+ \| ([\d,]+) \|", table, re.MULTILINE)
    assert match, f"no row for {name} in docs/results/models.md"
    return int(match.group(1).replace(",", ""))


def run_alone(source: Path, folder: Path, factory: str, **arguments: object) -> dict:
    """Copy `source` alone into `folder`, build `factory(**arguments)` from it without derive."""
    folder.mkdir()
    shutil.copy(source, folder / source.name)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUN, str(folder), SITE_PACKAGES, source.stem, factory]
        + [json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["derive_importable"], "derive must not be importable in the subprocess"
    assert report["derive_loaded"] == []
    return report


def test_hbnet56_from_heavyball_conv_alone(tmp_path: Path) -> None:
    report = run_alone(
        generated_dir() / "heavyball_conv.py", tmp_path / "alone", "hbnet56", num_classes=10
    )
    assert report["parameters"] == 853_018 == documented_parameters("hbnet56")
    assert report["shape"] == [2, 10] and report["finite"]


def test_hbnet32_with_every_reading_from_heavyball_conv_alone(tmp_path: Path) -> None:
    """The readings are keywords of the file's own factory: z₋₁ = 0, no ρ, β₂ learned (one more
    parameter per block, 3 stages of 5, beside ResNet-32's documented count)."""
    report = run_alone(
        generated_dir() / "heavyball_conv.py",
        tmp_path / "alone",
        "hbnet32",
        stage_start="zero",
        post_relu=False,
        learn_beta2=True,
    )
    assert report["parameters"] == documented_parameters("resnet32") + 15 == 464_154 + 15
    assert report["shape"] == [2, 10] and report["finite"]


def test_agdnet40_from_nesterov2_conv_alone(tmp_path: Path) -> None:
    report = run_alone(generated_dir() / "nesterov2_conv.py", tmp_path / "alone", "agdnet40")
    assert report["parameters"] == documented_parameters("agdnet40") == 1_019_956
    assert report["shape"] == [2, 10] and report["finite"]


def test_a_file_from_a_users_spec_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec's file gets the generic factories; its Generated-by line rebuilds it byte for byte."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "threestep.toml").write_text(THREESTEP, encoding="utf-8")
    assert main(["network", "--algo", "specs/threestep.toml", "--out", "first"]) == 0
    written = tmp_path / "first" / "threestep_conv.py"
    source = written.read_text(encoding="utf-8")
    line = next(x for x in source.splitlines() if x.startswith("Generated by `"))
    assert line.startswith("Generated by `derive network --algo specs/threestep.toml`")
    command = line.split("`")[1].split()
    assert main([*command[1:], "--out", "again"]) == 0
    assert (tmp_path / "again" / "threestep_conv.py").read_bytes() == written.read_bytes()
    # three lags, the ResNet-20 plan: the same convolutions and BNs as resnet20, fixed coefficients
    report = run_alone(written, tmp_path / "alone", "cifar", depth=20)
    assert report["parameters"] == documented_parameters("resnet20") == 269_722
    assert report["shape"] == [2, 10] and report["finite"]


@pytest.mark.parametrize("path", sorted(generated_dir().glob("*_conv.py")), ids=lambda p: p.stem)
def test_generated_conv_files_import_only_torch_and_the_standard_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
