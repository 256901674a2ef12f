"""The recipe variants the stability study compares: projection shortcut, PyTorch init, one crop per batch."""

from __future__ import annotations

import math

import pytest
import torch
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.codegen.loader import load_generated
from derive.errors import UserError
from derive.models import create_model
from derive.models.variants import torch_default_init, use_projection_shortcuts
from derive.train.augment import epoch_plan
from derive.train.config import TrainConfig
from derive.train.loop import build_model, run_training
from derive.train.runfiles import read_metrics


def _config(tmp_path, model="resnet20", **options):
    return TrainConfig(model=model, data_dir=str(tmp_path), out=str(tmp_path / "run"), **options)


def test_projection_shortcuts_replace_both_zero_pad_shortcuts_of_resnet20(tmp_path):
    heavyball = load_generated("heavyball_conv")
    PadShortcut, ProjectionShortcut = heavyball.PadShortcut, heavyball.ProjectionShortcut
    plain = build_model(_config(tmp_path))
    projected = build_model(_config(tmp_path, shortcut="projection"))
    assert sum(isinstance(m, PadShortcut) for m in plain.modules()) == 2
    assert not any(isinstance(m, PadShortcut) for m in projected.modules())
    shortcuts = [m for m in projected.modules() if isinstance(m, ProjectionShortcut)]
    assert [(s[0].in_channels, s[0].out_channels, s[0].stride) for s in shortcuts] == [
        (16, 32, (2, 2)),
        (32, 64, (2, 2)),
    ]
    # by hand: 1x1 convs 16*32 and 32*64 weights, BN scale and shift 2*32 and 2*64
    extra = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(projected) - count(plain) == extra
    # the new convolutions get the paper's He-normal (fan-out = out channels for a 1x1 conv) init
    w = shortcuts[1][0].weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    x = torch.randn(3, 3, 32, 32)
    assert projected.eval()(x).shape == (3, 10)


def test_projection_needs_zero_pad_shortcuts(tmp_path):
    model = write_model(tmp_path / "tiny.py")
    with pytest.raises(UserError, match="no zero-pad shortcut"):
        build_model(_config(tmp_path, model=str(model), shortcut="projection"))
    with pytest.raises(UserError, match="no zero-pad shortcut"):
        use_projection_shortcuts(create_model("densenet40"))


def test_torch_default_init_of_convolutions_or_classifier(tmp_path):
    paper = build_model(_config(tmp_path))
    convs = build_model(_config(tmp_path, conv_init="torch"))
    fc = build_model(_config(tmp_path, classifier_init="torch"))
    conv = lambda m: m.stages[1].blocks[1].branch.conv1.weight  # 32 -> 32, 3x3  # noqa: E731
    fan_in, fan_out = 32 * 9, 32 * 9
    # He-normal fan-out: std sqrt(2 / fan_out); PyTorch: U(±1/sqrt(fan_in)), std 1/sqrt(3 fan_in)
    assert conv(paper).std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert conv(convs).std().item() == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.05)
    assert conv(convs).abs().max().item() <= 1 / math.sqrt(fan_in)
    assert torch.equal(conv(fc), conv(paper))  # the classifier option leaves the convolutions
    head = lambda m: m.head[-1]  # noqa: E731
    assert head(paper).bias.abs().max().item() == 0  # Xavier-uniform weight, zero bias
    assert head(paper).weight.abs().max().item() <= math.sqrt(6 / (64 + 10))
    assert head(fc).bias.abs().max().item() > 0  # PyTorch's bias is U(±1/sqrt(64))
    assert head(fc).weight.abs().max().item() <= 1 / 8 and head(fc).bias.abs().max().item() <= 1 / 8
    assert torch.equal(head(convs).bias, head(paper).bias)
    assert torch_default_init(create_model("resnet20"), convs=False, linears=True) == 1


def test_one_crop_per_batch_shares_offset_and_flip_and_per_image_is_unchanged():
    per_image = epoch_plan(200, 3, 1, 4, True, torch.device("cpu"))
    again = epoch_plan(200, 3, 1, 4, True, torch.device("cpu"), group=1)
    assert all(
        torch.equal(a, b)
        for a, b in zip(per_image.__dict__.values(), again.__dict__.values(), strict=True)
    )
    per_batch = epoch_plan(200, 3, 1, 4, True, torch.device("cpu"), group=64)
    assert torch.equal(per_batch.order, per_image.order)
    for start in range(0, 200, 64):
        for t in (per_batch.dy, per_batch.dx, per_batch.flip):
            assert len(set(t[start : start + 64].tolist())) == 1
    offsets = {
        (int(a), int(b), bool(c))
        for a, b, c in zip(
            per_batch.dy[::64], per_batch.dx[::64], per_batch.flip[::64], strict=True
        )
    }
    assert len(offsets) > 1  # batches differ from each other
    assert len(set(per_image.dy[:64].tolist())) > 1


def test_variant_runs_train_and_record_their_options(tmp_path):
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    model = write_model(tmp_path / "tiny.py")
    common = {"epochs": 1, "batch_size": 32, "progress_interval": 0}
    runs = {}
    for name, extra in {
        "base": {},
        "batch": {"augment_per": "batch"},
        "init": {"conv_init": "torch"},
    }.items():
        config = TrainConfig(
            model=str(model),
            data_dir=str(tmp_path / "data"),
            out=str(tmp_path / name),
            **common,
            **extra,
        )
        summary = run_training(config)
        runs[name] = read_metrics(tmp_path / name)[0]["train_loss"]
        assert all(summary["options"][k] == v for k, v in extra.items())
    assert len(set(runs.values())) == 3
