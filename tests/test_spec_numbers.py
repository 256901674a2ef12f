"""Every number a spec gives (a coefficient's default, min, max; a --coef value) has one bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from derive.algorithms.userspec import spec_from_dict, spec_number
from derive.cli import main
from derive.errors import UserError
from derive.limits import MAX_CONSTANT

BODY = (
    '[update]\n"x[k+1]" = "x[k] - grad(x[k]) + beta*(x[k] - x[k-1])"\n[initial]\n"x[-1]" = "x[0]"\n'
)

TOO_LARGE = {
    "a default of 1e308": "beta = 1e308",
    "a negative default": "beta = -1e101",
    "an infinite default": "beta = inf",
    "a NaN default": "beta = nan",
    "a min of -1e300": "beta = { default = 0.3, min = -1e300 }",
    "a max of 1e200": "beta = { default = 0.3, max = 1e200 }",
}


@pytest.mark.parametrize("case", list(TOO_LARGE))
@pytest.mark.parametrize("form", ["fc", "conv"])
def test_a_huge_number_in_a_spec_is_one_line(tmp_path: Path, capsys, case: str, form: str) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(f'name = "big"\n[coefficients]\n{TOO_LARGE[case]}\n{BODY}', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["network", "--algo", str(spec), "--form", form, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"at most {MAX_CONSTANT:g}" in err and "beta" in err, err
    assert not out.exists()


def test_a_huge_coef_value_is_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["network", "--algo", "nesterov_sc", "--coef", "kappa=1e308", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"at most {MAX_CONSTANT:g}" in err, err
    assert not out.exists()


def test_a_huge_integer_is_named_by_its_size_not_printed() -> None:
    data = {"name": "big", "coefficients": {"beta": 10**5000}, "update": {"x[k+1]": "x[k]"}}
    with pytest.raises(UserError, match="an integer of 5,001 digits") as info:
        spec_from_dict(data)
    assert len(str(info.value)) < 200


def test_the_bound_itself_and_smaller_numbers_pass() -> None:
    assert spec_number(MAX_CONSTANT, "x") == MAX_CONSTANT
    assert spec_number(-3, "x") == -3.0
    with pytest.raises(UserError, match="got True"):
        spec_number(True, "x")
