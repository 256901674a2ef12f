"""`derive export`: pt2 and ONNX files that compute what the eager network computes, and bad input
refused in one line with exit status 2 and nothing written."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import derive.export
from derive.cli import main
from derive.models import create_model, model_entry, resolve_model
from derive.nas.codegen import write_nas_network

GENERATED = Path(__file__).resolve().parents[1] / "generated"
HAS_ONNXRUNTIME = all(
    importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime")
)


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def export(argv: list[str], seed: int = 5) -> int:
    """`derive export ARGV` with the RNG seeded, so the test can build the same weights."""
    torch.manual_seed(seed)
    return main(["export", *argv])


def reference(spec: str, num_classes: int, seed: int = 5, **model_args: object) -> torch.nn.Module:
    """The network `derive export` built after the same seed, in eval mode."""
    torch.manual_seed(seed)
    return resolve_model(spec, num_classes=num_classes, **model_args).eval()


def assert_same_function(run, model: torch.nn.Module, shape: tuple[int, ...]) -> None:
    """`run` (the exported program) and the eager model agree on two fresh random inputs."""
    for seed in (1, 2):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            torch.testing.assert_close(run(x), model(x), rtol=1e-4, atol=1e-5)


def test_pt2_round_trip_of_a_zoo_network(tmp_path, capsys) -> None:
    out = tmp_path / "resnet20.pt2"
    assert export(["resnet20", "--out", str(out), "--num-classes", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out} (pt2; input 1x3x32x32, output 1x3;")
    assert "max abs error against eager" in printed
    program = torch.export.load(str(out))
    assert_same_function(program.module(), reference("resnet20", 3), (1, 3, 32, 32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet20.pt2"]  # no temporary left


def test_pt2_of_a_file_with_model_args_and_a_size(tmp_path, capsys) -> None:
    spec = str(GENERATED / "heavyball_conv.py")
    out = tmp_path / "hb.pt2"
    argv = [spec, "--out", str(out), "--model-arg", "depth=8", "--input-size", "24x40"]
    assert export([*argv, "--batch", "2"]) == 0
    assert "input 2x3x24x40, output 2x10" in capsys.readouterr().out
    model = reference(spec, 10, depth=8)
    assert len(model.stages[0].blocks) == 1  # depth 8: one block per stage
    assert_same_function(torch.export.load(str(out)).module(), model, (2, 3, 24, 40))


# make test exports a file through the CLI above and a NAS network in tests/test_compile_export.py
@pytest.mark.slow
def test_pt2_of_a_nas_network_file(tmp_path) -> None:
    path = write_nas_network("darts_v2", tmp_path, channels=4, cells=3)
    out = tmp_path / "net.pt2"
    assert export([str(path), "--out", str(out), "--num-classes", "4"]) == 0
    model = reference(str(path), 4)
    assert_same_function(torch.export.load(str(out)).module(), model, (1, 3, 32, 32))


@pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="derive[export] (onnx, onnxruntime) not installed")
def test_onnx_matches_eager_in_onnxruntime(tmp_path, capsys) -> None:
    import onnxruntime

    # HBNet-8 (one block a stage, each op kind of the ResNets): ONNX export costs per op traced
    spec, args = str(GENERATED / "heavyball_conv.py"), {"depth": 8, "post_activation": False}
    out = tmp_path / "net.onnx"
    argv = [spec, "--out", str(out), "--num-classes", "7"]
    argv += ["--model-arg", "depth=8", "--model-arg", "post_activation=false"]
    assert export(argv) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (onnx; input 1x3x32x32, output 1x7;")
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    assert_same_function(run, reference(spec, 7, **args), (1, 3, 32, 32))


def test_onnx_without_the_extra_names_what_to_install(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    out = tmp_path / "net.onnx"
    assert main(["export", "resnet20", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "onnxruntime" in err and "pip install 'derive[export]'" in err
    assert not any(tmp_path.iterdir())


UNEXPORTABLE = """
import torch


class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # a branch on the data: torch.export cannot trace it
            return x.flatten(1)[:, :10]
        return -x.flatten(1)[:, :10]


def create_model(num_classes=10):
    return Branchy()
"""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resnet21", "--out", "{tmp}/a.pt2"], "unknown model 'resnet21'"),
        (["resnet20", "--out", "{tmp}/missing/a.pt2"], "does not exist"),
        (["resnet20", "--out", "{tmp}", "--format", "pt2"], "is a directory"),
        (["resnet20", "--out", "{tmp}/a.bin"], "give --format"),
        (["resnet20", "--out", "{tmp}/a.pt2", "--input-size", "4"], "8 to 1024 pixels"),
        (["resnet20", "--out", "{tmp}/a.pt2", "--input-size", "32x"], "SIZE or HxW"),
        (["resnet20", "--out", "{tmp}/a.pt2", "--num-classes", "0"], "positive integer"),
        (["resnet20", "--out", "{tmp}/a.pt2", "--batch", "1000"], "at most 256"),
        (["resnet20", "--out", "{tmp}/a.pt2", "--format", "tflite"], "invalid choice"),
        (["resnet20", "--out", "{tmp}/a.pt2", "--model-arg", "depth=8"], "takes no argument"),
        (["resnet20", "--out", "{tmp}/a.pt2", "--input-size", "8x1024"], None),  # runs: no error
        pytest.param(  # the bounds hold for an ImageNet network too (it downsamples by 32)
            ["hbnet34", "--out", "{tmp}/a.pt2", "--input-size", "8x1024"],
            None,
            marks=pytest.mark.slow,
        ),
        (["{tmp}/bad.py", "--out", "{tmp}/a.pt2"], "cannot export to pt2"),
        (["{tmp}/bad.py", "--out", "{tmp}/a.pt2", "--model-arg", "x=1"], "no argument 'x'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, argv, message) -> None:
    (tmp_path / "bad.py").write_text(UNEXPORTABLE, encoding="utf-8")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status = main(["export", *argv])
    err = capsys.readouterr().err
    if message is None:
        assert status == 0 and (tmp_path / "a.pt2").is_file()
        return
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]


def test_a_zoo_imagenet_network_is_traced_at_224_by_default(tmp_path, capsys, monkeypatch) -> None:
    """The default input follows the zoo's dataset entry; a small network stands in for ResNet-34's
    weights (the next test, in `make test-slow`, exports the real one at 224×224)."""
    assert model_entry("resnet34").dataset == "imagenet"
    small = reference(str(GENERATED / "heavyball_conv.py"), 2, depth=8, widths=(4, 4, 4))
    monkeypatch.setattr(derive.export, "resolve_model", lambda spec, **options: small)
    out = tmp_path / "r34.pt2"
    assert main(["export", "resnet34", "--out", str(out), "--num-classes", "2"]) == 0
    assert "input 1x3x224x224, output 1x2" in capsys.readouterr().out
    assert_same_function(torch.export.load(str(out)).module(), small, (1, 3, 224, 224))


@pytest.mark.slow
def test_a_zoo_default_input_is_the_dataset_s(tmp_path, capsys) -> None:
    create_model("resnet34")  # an ImageNet network: traced at 224×224 unless told otherwise
    out = tmp_path / "r34.pt2"
    assert main(["export", "resnet34", "--out", str(out), "--num-classes", "2"]) == 0
    assert "input 1x3x224x224, output 1x2" in capsys.readouterr().out
