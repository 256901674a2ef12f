"""Damaged and hostile run files, specs and genotypes: one line naming the file, exit 2.

Every reading command goes through derive.readers; each case copies committed run folders, damages
one file and runs the real command.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from derive.cli import main
from derive.errors import UserError
from derive.readers import (
    MAX_DEPTH,
    MAX_DIGITS,
    csv_rows,
    field,
    parse_json,
    parse_toml,
    read_csv_rows,
    read_json,
    read_text,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DEEP = "[" * 100_000 + "]" * 100_000
LATIN1 = '{"status": "caf\xe9"}'.encode("latin-1")
HUGE_INT = "1" * 5_000
BIG_FIELD = "x" * 200_000


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run derive; assert exit 2 and exactly one stderr line holding every needle."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# --- the reader itself -----------------------------------------------------------------------------


def test_reader_refuses_latin1_bytes_naming_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(LATIN1)
    with pytest.raises(UserError, match=r"not UTF-8 text \(byte 0xe9 at offset 15\)"):
        read_json(path)


def test_reader_bounds_the_size(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("[" + "0," * 100 + "0]")
    assert len(read_json(path)) == 101  # type: ignore[arg-type]
    with pytest.raises(UserError, match="more than this file can need"):
        read_text(path, max_bytes=100)


def test_reader_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "summary.json"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        read_json(fifo)


@pytest.mark.parametrize("depth, ok", [(MAX_DEPTH, True), (MAX_DEPTH + 1, False)])
def test_json_depth_is_bounded_at_max_depth(depth: int, ok: bool) -> None:
    text = "[" * depth + "]" * depth
    if ok:
        assert parse_json(text, "f") is not None
    else:
        with pytest.raises(UserError, match="nests too deeply"):
            parse_json(text, "f")


def test_json_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"command": "[" * 1000 + '\\"{' * 100})
    assert parse_json(text, "f") == json.loads(text)


@pytest.mark.parametrize("digits, ok", [(MAX_DIGITS, True), (MAX_DIGITS + 1, False)])
def test_json_integer_digits_are_bounded(digits: int, ok: bool) -> None:
    text = '{"seed": ' + "9" * digits + "}"
    if ok:
        assert parse_json(text, "f") == {"seed": int("9" * digits)}
    else:
        with pytest.raises(UserError, match=f"a number of {digits} digits"):
            parse_json(text, "f")


@pytest.mark.parametrize(
    "text, message",
    [
        ("x = " + DEEP, "nests too deeply"),
        ("x = " + HUGE_INT, "a number of 5,000 digits"),
        ("x = 0x" + "f" * 500, "an integer of more than"),
        ("a" + ".a" * 100_000 + " = 1", "dotted key of more than"),
        ("x = {" + "a = {" * 70 + "}" * 71, "nests too deeply"),
        ("x = = 1", "not valid TOML"),
    ],
)
def test_toml_bounds(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_toml(text, "spec.toml")


def test_toml_strings_and_comments_are_not_structure() -> None:
    text = 'a = \'[[[[[\'  # ]]]]\nb = """{{{\n' + "1" * 500 + '"""\nc = 1.5\n'
    assert parse_toml(text, "spec.toml") == {"a": "[[[[[", "b": "{{{\n" + "1" * 500, "c": 1.5}


def test_csv_field_over_the_limit_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(f"a,b\n1,2\n3,{BIG_FIELD}\n")
    file, rows = read_csv_rows(tmp_path, "metrics.csv")
    assert file == path and next(rows) == ["a", "b"] and next(rows) == ["1", "2"]
    with pytest.raises(UserError, match=r"metrics.csv' line 3 is malformed \(field larger"):
        next(rows)
    assert list(csv_rows("a\n\nb\n", "x")) == [["a"], [], ["b"]]


def test_field_checks_type_and_presence() -> None:
    data = {"options": {"seed": 3, "flag": True, "lr": float("nan")}}
    assert field(data, "options.seed", int, "s.json") == 3
    with pytest.raises(UserError, match="s.json lacks 'options.epochs'"):
        field(data, "options.epochs", int, "s.json")
    with pytest.raises(UserError, match="malformed 'options.flag': a boolean"):
        field(data, "options.flag", int, "s.json")
    with pytest.raises(UserError, match="malformed 'options.lr'"):
        field(data, "options.lr", float, "s.json")


# --- derive report ---------------------------------------------------------------------------------


def _cifar_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(RESULTS / "runs" / "cifar10-head-cpu" / "resnet56-e8-s0", run)
    return run


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("summary.json", lambda p: p.write_bytes(LATIN1), "not UTF-8 text"),
        ("summary.json", lambda p: p.write_text(DEEP), "nests too deeply"),
        ("summary.json", lambda p: p.write_text('{"status": ' + HUGE_INT + "}"), "5,000 digits"),
        ("summary.json", lambda p: p.write_text("[1, 2]"), "not an object"),
        ("metrics.csv", lambda p: p.write_bytes(b"epoch\xff\n"), "not UTF-8 text"),
        (
            "metrics.csv",
            lambda p: p.write_text(p.read_text() + f'"{BIG_FIELD}"\n'),
            "is malformed (field larger",
        ),
    ],
)
def test_report_refuses_damaged_run_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    damage: Callable[[Path], object],
    message: str,
) -> None:
    run = _cifar_run(tmp_path)
    damage(run / name)
    out = tmp_path / "r.md"
    _one_line_exit_2(capsys, ["report", str(run), "--out", str(out)], str(run / name), message)
    assert not out.exists()


# --- derive nas report -----------------------------------------------------------------------------


def _nas_study(tmp_path: Path) -> tuple[Path, Path]:
    study, evals = tmp_path / "study", tmp_path / "eval"
    shutil.copytree(RESULTS / "nas-study" / "agd-s0", study / "agd-s0")
    shutil.copytree(RESULTS / "nas-eval" / "agd-s0", evals / "agd-s0")
    return study, evals


def _nas_report(study: Path, evals: Path, out: Path) -> list[str]:
    return ["nas", "report", "--study", str(study), "--eval", str(evals), "--out", str(out)]


def _set(path: Path, key: str, value: object) -> None:
    data = json.loads(path.read_text())
    head, _, last = key.rpartition(".")
    table = data
    for part in filter(None, head.split(".")):
        table = table[part]
    table[last] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "where, damage, message",
    [
        ("study/agd-s0/summary.json", lambda p: p.write_bytes(LATIN1), "not UTF-8 text"),
        ("study/agd-s0/genotype.json", lambda p: p.write_text(DEEP), "nests too deeply"),
        (
            "study/agd-s0/genotype.json",
            lambda p: p.write_text(p.read_text().replace("2,", HUGE_INT + ",", 1)),
            "5,000 digits",
        ),
        (
            "study/agd-s0/summary.json",
            lambda p: _set(p, "search_cost.hours", "soon"),
            "malformed 'search_cost.hours'",
        ),
        ("study/agd-s0/summary.json", lambda p: _set(p, "space", [1]), "lacks 'space.name'"),
        (
            "study/agd-s0/summary.json",
            lambda p: _set(p, "options.batch_size", 0),
            "batch_size and options.epochs must be at least 1",
        ),
        (
            "study/agd-s0/metrics.csv",
            lambda p: p.write_text(p.read_text() + f'1,1,1,1,1,1,1,1,"{BIG_FIELD}"\n'),
            "is malformed (field larger",
        ),
        ("eval/agd-s0/summary.json", lambda p: p.write_text(DEEP), "nests too deeply"),
        (
            "eval/agd-s0/summary.json",
            lambda p: _set(p, "options.seed", "zero"),
            "malformed 'options.seed'",
        ),
        ("eval/agd-s0/cost.json", lambda p: p.write_text("[]"), "not an object"),
        (
            "eval/agd-s0/cost.json",
            lambda p: p.write_text('{"process_cpu_seconds": "1"}'),
            "malformed 'process_cpu_seconds'",
        ),
        (
            "eval/agd-s0/agd_s0.py",
            lambda p: p.write_text(p.read_text() + "\nCHANNELS = 'many'\n"),
            "malformed 'CHANNELS'",
        ),
    ],
)
def test_nas_report_refuses_damaged_run_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    where: str,
    damage: Callable[[Path], object],
    message: str,
) -> None:
    study, evals = _nas_study(tmp_path)
    damage(tmp_path / where)
    out = tmp_path / "nas.md"
    _one_line_exit_2(capsys, _nas_report(study, evals, out), message)
    assert not out.exists()


def test_nas_report_of_the_undamaged_copy_works(tmp_path: Path, capsys) -> None:
    study, evals = _nas_study(tmp_path)
    assert main(_nas_report(study, evals, tmp_path / "nas.md")) == 0
    assert "agd" in (tmp_path / "nas.md").read_text()


# --- derive stability report / run -----------------------------------------------------------------

STAB_RUNS = ("resnet20-s0", "resnet20-s1", "hbnet20-s0", "hbnet20-s1")


def _stability_study(tmp_path: Path) -> Path:
    study = tmp_path / "study"
    for name in STAB_RUNS:
        shutil.copytree(RESULTS / "stability" / "runs" / name, study / "runs" / name)
        (study / "probes").mkdir(exist_ok=True)
        shutil.copy(RESULTS / "stability" / "probes" / f"{name}.json", study / "probes")
    return study


def _stab_report(study: Path, out: Path) -> list[str]:
    return ["stability", "report", str(study), "--out", str(out), "--no-figures"]


def _probe(study: Path, name: str = "resnet20-s0") -> Path:
    return study / "probes" / f"{name}.json"


def _edit(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: _probe(s).write_bytes(LATIN1), "not UTF-8 text"),
        (lambda s: _probe(s).write_text(DEEP), "nests too deeply"),
        (lambda s: _edit(_probe(s), lambda d: d.update(z_std=[1] * d["steps"])), "z_std row 1"),
        (lambda s: _edit(_probe(s), lambda d: d.update(loss=d["loss"][:3])), "loss has 3 rows"),
        (lambda s: _edit(_probe(s), lambda d: d["blocks"].pop()), "z_std row 1 does not hold"),
        (lambda s: _edit(_probe(s), lambda d: d.update(steps="21")), "malformed 'steps'"),
        (lambda s: _edit(_probe(s), lambda d: d.update(seed=1)), "is a probe of 'resnet20' seed 1"),
        (
            lambda s: _edit(_probe(s), lambda d: d.update(parts=["a"] * len(d["parts"]))),
            "lack 'stem' and 'head'",
        ),
        (
            lambda s: _edit(_probe(s, "resnet20-s1"), _fewer_blocks),
            "disagrees with the probe 'resnet20-s0' on blocks",
        ),
        (
            lambda s: (s / "runs" / "hbnet20-s0" / "summary.json").write_text(DEEP),
            "hbnet20-s0/summary.json' nests too deeply",
        ),
        (
            lambda s: _set(s / "runs" / "hbnet20-s0" / "summary.json", "options.lr", "fast"),
            "malformed 'options.lr'",
        ),
        (
            lambda s: (s / "runs" / "hbnet20-s0" / "steps.csv").write_bytes(b"step\xe9\n"),
            "steps.csv' is not UTF-8 text",
        ),
    ],
)
def test_stability_report_refuses_damaged_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], object],
    message: str,
) -> None:
    study = _stability_study(tmp_path)
    damage(study)
    out = tmp_path / "stab.md"
    _one_line_exit_2(capsys, _stab_report(study, out), message)
    assert not out.exists()


def _fewer_blocks(probe: dict) -> None:
    """A probe consistent in itself, with one block less than its arm's other probe."""
    probe["blocks"].pop()
    probe["z_std"] = [row[:-1] for row in probe["z_std"]]


def test_stability_report_of_the_undamaged_copy_works(tmp_path: Path, capsys) -> None:
    study = _stability_study(tmp_path)
    assert main(_stab_report(study, tmp_path / "stab.md")) == 0
    assert (tmp_path / "stab.md").read_text().startswith("# Depth stability")


def test_stability_report_still_skips_a_run_without_summary(tmp_path: Path, capsys) -> None:
    study = _stability_study(tmp_path)
    (study / "runs" / "hbnet20-s1" / "summary.json").unlink()  # a run in progress
    assert main(_stab_report(study, tmp_path / "stab.md")) == 0


def test_stability_run_refuses_a_damaged_summary(tmp_path: Path, capsys) -> None:
    study = _stability_study(tmp_path)
    (study / "runs" / "resnet20-s0" / "summary.json").write_text(DEEP)
    argv = ["stability", "run", "--data-dir", str(tmp_path), "--out", str(study)]
    argv += ["--arms", "resnet20", "--seeds", "0", "--probe-seeds", "0", "--dry-run"]
    _one_line_exit_2(capsys, argv, "resnet20-s0/summary.json' nests too deeply")


# --- specs and genotypes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("name = 'hb'\nx = " + HUGE_INT + "\n", "a number of 5,000 digits"),
        ("name = 'hb'\nx = " + DEEP + "\n", "nests too deeply"),
    ],
)
def test_network_refuses_hostile_specs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    spec = tmp_path / "hb.toml"
    spec.write_text(text)
    argv = ["network", "--algo", str(spec), "--form", "fc", "--out", str(tmp_path / "out")]
    _one_line_exit_2(capsys, argv, str(spec), message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"space": "darts", "normal": [[["skip_connect", ' + HUGE_INT + "]]]}", "5,000 digits"),
        (DEEP, "nests too deeply"),
        ('{"space": "caf\xe9"}', "not UTF-8 text"),
    ],
)
def test_nas_network_refuses_hostile_genotypes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "genotype.json"
    path.write_bytes(text.encode("latin-1"))
    argv = ["nas", "network", str(path), "--out", str(tmp_path / "out")]
    _one_line_exit_2(capsys, argv, str(path), message)
    assert not (tmp_path / "out").exists()
