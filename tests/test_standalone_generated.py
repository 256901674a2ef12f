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
import importlib, json, sys
site, jobs = sys.argv[1], json.loads(sys.argv[2])
base = [p for p in sys.path if "-packages" not in p]
reports = []
for folder, module_name, factory, arguments in jobs:
    sys.path[:] = base + [folder, site]  # this job's folder only
    importlib.invalidate_caches()
    try:
        import derive
    except ImportError:
        derive_importable = False
    else:
        derive_importable = True
    import torch
    build = getattr(importlib.import_module(module_name), factory)
    torch.manual_seed(0)
    model = build(**arguments).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    reports.append({
        "derive_importable": derive_importable,
        "derive_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "derive"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "shape": list(out.shape),
        "finite": bool(torch.isfinite(out).all()),
    })
    del sys.modules[module_name]  # the next job imports its own file, never this one
print(json.dumps(reports))
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


def run_alone_many(jobs: list[tuple[Path, Path, str, dict]]) -> list[dict]:
    """Copy each job's `source` alone into its own empty `folder` and build `factory(**arguments)`
    from it without derive: one fresh interpreter for all jobs (it pays torch's import once), each
    job's import path holding its own folder only."""
    specs = []
    for source, folder, factory, arguments in jobs:
        folder.mkdir()
        shutil.copy(source, folder / source.name)
        specs.append([str(folder), source.stem, factory, arguments])
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUN, SITE_PACKAGES, json.dumps(specs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=jobs[0][1],
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    for report in reports:
        assert not report["derive_importable"], "derive must not be importable in the subprocess"
        assert report["derive_loaded"] == []
    return reports


def run_alone(source: Path, folder: Path, factory: str, **arguments: object) -> dict:
    """Copy `source` alone into `folder`, build `factory(**arguments)` from it without derive."""
    return run_alone_many([(source, folder, factory, arguments)])[0]


# the multi-stream form's zoo networks (tests/test_conv_streams.py checks what they compute)
MULTI_STREAM_ZOO = [("extragradient", "egnet56", 1_727_962), ("qhm", "qhmnet56", 853_018)]


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """threestep_conv.py, written by `derive network --algo specs/threestep.toml --out first`."""
    root = tmp_path_factory.mktemp("users")
    (root / "specs").mkdir()
    (root / "specs" / "threestep.toml").write_text(THREESTEP, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["network", "--algo", "specs/threestep.toml", "--out", "first"]) == 0
    return root / "first" / "threestep_conv.py"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> dict[str, dict]:
    """Every network this file builds from a file alone, built in one fresh interpreter."""
    root = tmp_path_factory.mktemp("alone")
    heavyball, nesterov2 = (
        generated_dir() / "heavyball_conv.py",
        generated_dir() / "nesterov2_conv.py",
    )
    jobs = {
        "hbnet56": (heavyball, root / "hbnet56", "hbnet56", {"num_classes": 10}),
        "hbnet32": (
            heavyball,
            root / "hbnet32",
            "hbnet32",
            {"stage_start": "zero", "post_relu": False, "learn_beta2": True},
        ),
        "agdnet40": (nesterov2, root / "agdnet40", "agdnet40", {}),
        # three lags, the ResNet-20 plan: the same convolutions and BNs as resnet20
        "threestep": (users_file, root / "threestep", "cifar", {"depth": 20}),
    }
    for algo, network, _ in MULTI_STREAM_ZOO:
        jobs[network] = (generated_dir() / f"{algo}_conv.py", root / network, network, {})
    return dict(zip(jobs, run_alone_many(list(jobs.values())), strict=True))


def test_hbnet56_from_heavyball_conv_alone(reports: dict[str, dict]) -> None:
    report = reports["hbnet56"]
    assert report["parameters"] == 853_018 == documented_parameters("hbnet56")
    assert report["shape"] == [2, 10] and report["finite"]


def test_hbnet32_with_every_reading_from_heavyball_conv_alone(reports: dict[str, dict]) -> None:
    """The readings are keywords of the file's own factory: z₋₁ = 0, no ρ, β₂ learned (one more
    parameter per block, 3 stages of 5, beside ResNet-32's documented count)."""
    report = reports["hbnet32"]
    assert report["parameters"] == documented_parameters("resnet32") + 15 == 464_154 + 15
    assert report["shape"] == [2, 10] and report["finite"]


def test_agdnet40_from_nesterov2_conv_alone(reports: dict[str, dict]) -> None:
    report = reports["agdnet40"]
    assert report["parameters"] == documented_parameters("agdnet40") == 1_019_956
    assert report["shape"] == [2, 10] and report["finite"]


def test_a_file_from_a_users_spec_alone(
    users_file: Path, reports: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec's file gets the generic factories; its Generated-by line rebuilds it byte for byte."""
    monkeypatch.chdir(users_file.parents[1])
    source = users_file.read_text(encoding="utf-8")
    line = next(x for x in source.splitlines() if x.startswith("Generated by `"))
    assert line.startswith("Generated by `derive network --algo specs/threestep.toml`")
    command = line.split("`")[1].split()
    assert main([*command[1:], "--out", "again"]) == 0
    assert (users_file.parents[1] / "again" / "threestep_conv.py").read_bytes() == (
        users_file.read_bytes()
    )
    # three lags, the ResNet-20 plan: the same convolutions and BNs as resnet20, fixed coefficients
    report = reports["threestep"]
    assert report["parameters"] == documented_parameters("resnet20") == 269_722
    assert report["shape"] == [2, 10] and report["finite"]


@pytest.mark.parametrize("algo,network,count", MULTI_STREAM_ZOO)
def test_multi_stream_files_run_alone(
    reports: dict[str, dict], algo: str, network: str, count: int
) -> None:
    """Copied alone, without derive importable: the zoo's network with models.md's count."""
    report = reports[network]
    assert report["parameters"] == documented_parameters(network) == count
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
