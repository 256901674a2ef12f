"""`derive train --dataset imagenet` on a tiny generated ImageFolder: recipe, loader, bad input."""

from __future__ import annotations

import json
import logging
import shutil
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchvision", reason="the imagenet extra: pip install 'derive[imagenet]'")

from ddp_fixtures import write_imagefolder
from train_fixtures import (  # noqa: F401
    loader_workers_stopped,
    single_thread,
    write_cifar10,
    write_model,
)

from derive.cli import build_parser, main
from derive.cli.train import build_config as _config
from derive.errors import UserError
from derive.models.registry import load_python_file
from derive.train import imagenet as inet
from derive.train.checkpoint import load_checkpoint
from derive.train.runfiles import read_metrics

SIZE = ["--image-size", "32"]


@pytest.fixture
def tree(tmp_path):
    write_imagefolder(tmp_path / "data")
    write_model(tmp_path / "tiny.py")
    return tmp_path


def _train(root, *extra: str) -> list[str]:
    return [
        "train",
        str(root / "tiny.py"),
        "--dataset",
        "imagenet",
        "--data-dir",
        str(root / "data"),
        "--out",
        str(root / "run"),
        "--progress-interval",
        "0",
        *extra,
    ]


def _parse(*argv: str):
    return build_parser().parse_args(["train", "m", "--data-dir", "d", "--out", "o", *argv])


def test_imagenet_defaults_are_the_papers_recipe_with_linear_lr_scaling():
    config = _config(_parse("--dataset", "imagenet"))
    assert (config.epochs, config.batch_size, config.lr) == (100, 256, 0.1)
    assert config.milestone_epochs() == [30, 60, 90]
    assert [config.lr_at(e) for e in (1, 30, 31, 60, 61, 90, 91, 100)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4]
    )
    assert (config.momentum, config.nesterov, config.weight_decay) == (0.9, True, 1e-4)
    assert (config.image_size, config.color_jitter, config.lighting) == (224, 0.4, 0.1)
    assert _config(_parse("--dataset", "imagenet", "--batch-size", "1024")).lr == pytest.approx(0.4)
    given = _config(
        _parse("--dataset", "imagenet", "--batch-size", "512", "--lr", "0.3", "--epochs", "90")
    )
    assert (given.lr, given.epochs, given.batch_size) == (0.3, 90, 512)
    cifar = _config(_parse())  # CIFAR keeps its own recipe
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.lr_milestones) == (
        300,
        64,
        0.1,
        (0.5, 0.75),
    )


@pytest.mark.usefixtures("loader_workers_stopped")
def test_one_epoch_on_a_tiny_imagefolder_records_top1_and_top5(tree, capsys):
    assert main(_train(tree, *SIZE, "--epochs", "1", "--batch-size", "8", "--workers", "1")) == 0
    run = tree / "run"
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1] and 0 <= rows[0]["test_top5_acc"] <= 1
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert header.endswith(",seconds,test_top5_acc")
    summary = json.loads((run / "summary.json").read_text())
    data = summary["dataset"]
    assert (data["num_classes"], data["train_size"], data["test_size"]) == (
        3,
        18,
        6,
    )  # from folders
    assert summary["final_test_top5_error_percent"] == pytest.approx(
        100 * (1 - rows[0]["test_top5_acc"])
    )
    assert summary["options"]["lr"] == pytest.approx(0.1 * 8 / 256)  # scaled to the global batch
    assert "3x32x32" in summary["model"]["flops_note"]

    # The reported validation metrics are the saved model's own, recomputed here with Pillow:
    # decode, resize the shorter side to 32/0.875 = 37, centre crop 32, normalize.
    from PIL import Image

    model = load_python_file(str(tree / "tiny.py")).create_model(3)
    model.load_state_dict(load_checkpoint(run / "checkpoint.pt")["model"])
    model.eval()
    images, labels = [], []
    for c, folder in enumerate(sorted((tree / "data" / "val").iterdir())):
        for path in sorted(folder.iterdir()):
            img = Image.open(path).convert("RGB")
            w, h = img.size
            scale = 37 / min(w, h)
            img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
            w, h = img.size
            left, top = int(round((w - 32) / 2)), int(round((h - 32) / 2))
            pixels = np.asarray(img.crop((left, top, left + 32, top + 32)), dtype=np.float32) / 255
            images.append((pixels - inet.MEAN) / inet.STD)
            labels.append(c)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        loss = F.cross_entropy(model(x), torch.tensor(labels)).item()
    assert rows[0]["test_loss"] == pytest.approx(loss, abs=0.02)


@pytest.mark.usefixtures("loader_workers_stopped")
def test_batches_do_not_depend_on_workers_or_where_jpegs_are_decoded(tree):
    root = tree / "data"
    classes = inet.scan_classes(root)
    index = inet.scan_split(root, "train", classes)
    aug = inet.Augment(image_size=32)

    def epoch(workers: int, on_device: bool):
        source = inet.ImageNetSource(
            root, index, aug, 3, torch.device("cpu"), torch.contiguous_format, workers, on_device
        )
        return list(source.train_batches(8, seed=3, epoch=2))

    base = epoch(0, False)
    for other in (epoch(1, False), epoch(0, True)):
        for (x, y), (x2, y2) in zip(base, other, strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)
    assert [len(y) for _, y in base] == [8, 8, 2]
    labels = torch.cat([y for _, y in base]).sort().values
    assert labels.tolist() == sorted(index.labels)  # every image once


def test_crop_rule_is_torchvisions_random_resized_crop():
    """Same fallback exactly, and the same distribution of crops as torchvision's get_params."""
    import random

    from torchvision.transforms import RandomResizedCrop

    def theirs(h, w):
        # get_params reads only the image's shape: a broadcast view of one zero, never h*w floats
        image = torch.zeros(1, 1, 1).expand(1, h, w)
        return tuple(RandomResizedCrop.get_params(image, (0.08, 1.0), (3 / 4, 4 / 3)))

    torch.manual_seed(0)
    for h, w in [
        (1000, 10),
        (10, 1000),
        (2000, 20),
        (20, 2000),
    ]:  # no try fits: the central crop, aspect clamped
        assert inet.resized_crop_params(h, w, random.Random(1)) == theirs(h, w)
    rng = random.Random(2)
    n = 3000
    mine = torch.tensor(
        [inet.resized_crop_params(375, 500, rng) for _ in range(n)], dtype=torch.float64
    )
    ref = torch.tensor([theirs(375, 500) for _ in range(n)], dtype=torch.float64)
    for crops in (mine, ref):
        top, left, h, w = crops.T
        assert (top >= 0).all() and (top + h <= 375).all() and (left + w <= 500).all()
    for stat in (
        lambda c: c[:, 2] * c[:, 3] / (375 * 500),  # area fraction
        lambda c: torch.log(c[:, 3] / c[:, 2]),  # log aspect
        lambda c: c[:, 0] + c[:, 2] / 2,  # centre row
    ):
        a, b = stat(mine), stat(ref)
        assert abs(a.mean() - b.mean()) < 4 * (a.var() / n + b.var() / n) ** 0.5


def test_color_jitter_and_lighting_match_fb_resnet_torch_per_image():
    """A per-image, per-pixel restatement of fb.resnet.torch's ColorJitter and Lighting."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 5, 6, generator=gen, dtype=torch.float64)
    params = torch.rand(4, inet.N_PARAMS, generator=gen, dtype=torch.float64)
    params[:, 1:4] = 0.6 + 0.8 * params[:, 1:4]
    params[:, 7:10] = torch.randn(4, 3, generator=gen, dtype=torch.float64) * 0.1
    got = inet.lighting(inet.color_jitter(x, params), params)
    for b in range(4):
        img = x[b].clone()
        order = sorted(range(3), key=lambda op: params[b, 4 + op].item())
        for op in order:
            alpha = params[b, 1 + op].item()
            gray = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
            if op == 0:  # Brightness: blend with black
                img = img * alpha
            elif op == 1:  # Contrast: blend with the mean of the grey image
                img = img * alpha + (1 - alpha) * gray.mean()
            else:  # Saturation: blend with the grey image
                img = img * alpha + (1 - alpha) * gray
        for i in range(3):  # Lighting: rgb_i = sum_j eigvec[i][j] * alpha_j * eigval_j
            img[i] += sum(
                inet.EIGVEC[i][j] * params[b, 7 + j].item() * inet.EIGVAL[j] for j in range(3)
            )
        torch.testing.assert_close(got[b], img)


def _fails(capsys, argv, message, root):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1, err
    assert message in err, err
    assert not (root / "run").exists()


def test_bad_layouts_exit_2_with_one_line_and_write_nothing(tree, capsys):
    data = tree / "data"
    shutil.rmtree(data / "val")
    _fails(capsys, _train(tree, *SIZE), "has no val/ folder", tree)
    (data / "val").mkdir()
    shutil.move(str(data / "train"), str(tree / "train-away"))
    _fails(capsys, _train(tree, *SIZE), "has no train/ folder", tree)
    shutil.move(str(tree / "train-away"), str(data / "train"))
    (data / "train" / "n09999999").mkdir()  # an empty class folder
    _fails(capsys, _train(tree, *SIZE), "empty class folder", tree)
    (data / "train" / "n09999999").rmdir()
    (data / "val" / "n00000001").mkdir()
    _fails(capsys, _train(tree, *SIZE), "class folders that train/ lacks: n00000001", tree)


def test_a_corrupt_file_fails_the_scan_with_one_line(tree, capsys):
    bad = tree / "data" / "train" / "n01443537" / "broken.JPEG"
    bad.write_bytes(b"<html>not found</html>")
    _fails(capsys, _train(tree, *SIZE), "broken.JPEG' is not an image", tree)
    bad.write_bytes(b"")
    _fails(capsys, _train(tree, *SIZE), "broken.JPEG' is not an image", tree)


def test_a_file_that_fails_to_decode_mid_epoch_is_replaced_with_a_warning(tree, caplog):
    caplog.set_level(logging.WARNING)
    bad = tree / "data" / "train" / "n01443537" / "n01443537_0.JPEG"
    bad.write_bytes(bad.read_bytes()[:40])  # a JPEG header, then nothing: passes the scan
    assert main(_train(tree, *SIZE, "--epochs", "1", "--batch-size", "6", "--workers", "0")) == 0
    assert "unreadable image train/n01443537/n01443537_0.JPEG" in caplog.text
    summary = json.loads((tree / "run" / "summary.json").read_text())
    assert summary["dataset"]["unreadable_files"][0].startswith("train/n01443537/n01443537_0.JPEG")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pad", "2"], "--pad, --pad-fill and --cutout apply to CIFAR only"),
        (["--download"], "ImageNet cannot be downloaded"),
        (["--image-size", "16"], "--image-size: expected an integer >= 32, got '16'"),
        (["--color-jitter", "2"], "--color-jitter: expected a number >= 0 of at most 1"),
        (["--workers", "65"], "--workers: expected an integer >= 0 of at most 64"),
    ],
)
def test_bad_imagenet_options_exit_2(tree, capsys, argv, message):
    _fails(capsys, _train(tree, *argv), message, tree)


def test_imagenet_options_are_refused_for_cifar(tmp_path, capsys):
    write_cifar10(tmp_path / "data", per_file=10, n_test=10)
    write_model(tmp_path / "tiny.py")
    argv = [
        "train",
        str(tmp_path / "tiny.py"),
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
    ]
    _fails(
        capsys,
        [*argv, "--image-size", "64"],
        "--image-size applies to --dataset imagenet only",
        tmp_path,
    )


def test_missing_torchvision_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(UserError, match=r"pip install 'derive\[imagenet\]'"):
        inet.require_torchvision()
