"""A spec's coefficient and schedule names never clash with the names of the generated code.

Every name below is one the generated modules use themselves (their inputs and loop variables,
imported modules, builtins, module constants, locals of block_coefficients and of the fc forward).
A spec naming its coefficient and its schedule that way gives the same network as one with
harmless names, in every form.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from derive.algorithms.userspec import API_PARAMETERS
from derive.cli import main
from derive.codegen.generate import FORMS
from derive.codegen.templates import template_dir
from derive.models.registry import load_python_file

COLLIDING = [
    "z0",
    "z",
    "layer",
    "values",
    "float",
    "enumerate",
    "range",
    "abs",
    "list",
    "math",
    "torch",
    "nn",
    "F",
    "sys",
    "coefficients",
    "tables",
    "row",
    "history",
    "stage_input",
    "argument",
    "t",
    "t_z",
    "out",
    "DEFAULTS",
    "ALGORITHM",
    "coefficient_tables",
    "block_coefficients",
    "_coefficients",
    "__builtins__",
    "c_rate",
    "s_rate",
]

SPEC = """
name = "clash"
[coefficients]
{n0} = {{ default = 0.3, min = -1, max = 1 }}
{n1} = {{ default = 0.2, min = -1, max = 1 }}
{n2} = {{ default = 0.1, min = -1, max = 1 }}
{n3} = {{ default = -0.1, min = -1, max = 1 }}
[schedules]
{n0} = "1/(k + 2)"
{n1} = "1/(k + 3)"
{n2} = "(k + 1)/(k + 4)"
{n3} = "1/(k + 5)"
[update]
"x[k+1]" = "x[k] - (1 - {n0}*{n0}[k])*grad(x[k]) + {n1}*{n1}[k]*(x[k] - x[k-1]) + ({n2}*{n2}[k] + {n3}*{n3}[k])*(x[k-1] - x[k-2])"
[initial]
"x[-1]" = "x[0]"
"x[-2]" = "x[0]"
"""
"""Four slots, each one name for a coefficient and for a schedule: a name that clashes breaks the
network whichever slot it sits in, so four colliding names share one generated module."""

HARMLESS = ("rate", "step", "gain", "lag")
OVERRIDE = (-0.2, 0.4, -0.3, 0.25)  # coefficient values other than the defaults, slot by slot
SLOTS = len(HARMLESS)


def _groups() -> list[tuple[str, ...]]:
    """COLLIDING in groups of four, the last padded with harmless names."""
    padded = COLLIDING + list(HARMLESS[: -len(COLLIDING) % SLOTS])
    return [tuple(padded[i : i + SLOTS]) for i in range(0, len(padded), SLOTS)]


def _module(tmp_path: Path, form: str, names: tuple[str, ...], tag: str) -> object:
    folder = tmp_path / tag
    folder.mkdir()
    spec = folder / "spec.toml"
    slots = {f"n{i}": name for i, name in enumerate(names)}
    spec.write_text(SPEC.format(**slots), encoding="utf-8")
    assert main(["network", "--algo", str(spec), "--form", form, "--out", str(folder)]) == 0
    return load_python_file(str(folder / f"clash_{form}.py"))


def _run(module: object, form: str, override: dict[str, float]) -> torch.Tensor:
    """Build the network (with `override` as its coefficient values) and run one forward."""
    torch.manual_seed(0)
    if form == "fc":
        weight = torch.eye(4, dtype=torch.float64) * 0.5 + 0.1
        net = module.build_tied(weight, "tanh", 6, **override)  # type: ignore[attr-defined]
        return net(torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4))
    net = module.create_model(  # type: ignore[attr-defined]
        num_classes=10, depth=8, algorithm_coefficients=override
    )
    net.eval()
    return net(torch.linspace(-1, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32))


@pytest.mark.parametrize("form", FORMS)
def test_colliding_names_give_the_network_of_harmless_names(tmp_path: Path, form: str) -> None:
    reference = _module(tmp_path, form, HARMLESS, "harmless")
    defaults = _run(reference, form, {})
    overridden = _run(reference, form, dict(zip(HARMLESS, OVERRIDE, strict=True)))
    assert not torch.allclose(defaults, overridden)  # the overrides reach the network
    assert {name for names in _groups() for name in names} >= set(COLLIDING)
    for i, names in enumerate(_groups()):
        module = _module(tmp_path, form, names, f"group{i}")
        got = _run(module, form, {})
        torch.testing.assert_close(got, defaults, rtol=1e-6, atol=1e-9, msg=str(names))
        got = _run(module, form, dict(zip(names, OVERRIDE, strict=True)))
        torch.testing.assert_close(got, overridden, rtol=1e-6, atol=1e-9, msg=str(names))


def test_templates_use_no_variable_in_the_user_namespace() -> None:
    """User coefficients print as c_<name>, schedules as s_<name>: no template may bind such a name."""
    for path in sorted(template_dir().glob("*.j2")):
        if path.name == "nas_network.py.j2":  # no user spec reaches it
            continue
        code = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", path.read_text(encoding="utf-8"))
        assert not re.findall(r"\b[cs]_\w+", code), path.name


@pytest.mark.parametrize("name", sorted(API_PARAMETERS))
def test_a_coefficient_named_like_a_parameter_is_refused(tmp_path, capsys, name: str) -> None:
    spec = tmp_path / "spec.toml"
    names = {"n0": name, "n1": "step", "n2": "gain", "n3": "lag"}
    spec.write_text(SPEC.format(**names), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["network", "--algo", str(spec), "--form", "fc", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"[coefficients] {name}" in err, err
    assert not out.exists()


def test_the_refused_parameters_are_those_of_the_generated_functions(tmp_path: Path) -> None:
    """API_PARAMETERS lists every named parameter that coefficients are passed beside."""
    import inspect

    module = _module(tmp_path, "fc", HARMLESS, "api")
    names = set()
    for function in (module.build_tied, module.build_untied, module.ClashFC.__init__):
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD:
                names.add(parameter.name)
    assert names == set(API_PARAMETERS)
