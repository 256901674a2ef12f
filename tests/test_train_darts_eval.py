"""`derive train`'s DARTS evaluation options (SCIS §9.3): cutout, cosine lr, auxiliary loss,
drop-path schedule, gradient clipping, `--recipe darts-eval` and its precedence, and the end-to-end
path `derive nas network` → `derive train` → `--resume` on tiny synthetic CIFAR files."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.cli import build_parser, main
from derive.cli.train import build_config
from derive.errors import UserError
from derive.models.registry import load_python_file
from derive.train.augment import AugmentOptions, BatchMaker, Normalizer, derive_seed
from derive.train.checkpoint import load_checkpoint, save_checkpoint
from derive.train.config import TrainConfig, config_fields, recipe_config
from derive.train.data import load_cifar
from derive.train.loop import build_model, run_training
from derive.train.recipes import RECIPES
from derive.train.regularize import cutout_centres, drop_path_at
from derive.train.runfiles import read_metrics

AUX_MODEL = '''
"""A tiny model with an auxiliary head and a drop_path_prob attribute (recorded per forward)."""
import os

import torch
import torch.nn as nn


class TinyAux(nn.Module):
    def __init__(self, num_classes, auxiliary):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)
        self.auxiliary_head = nn.Linear(8 * 16 * 16, num_classes) if auxiliary else None
        self.drop_path_prob = 0.0

    def forward(self, x):
        log = os.environ.get("DERIVE_TEST_DROP_PATH_LOG")
        if log and self.training:
            with open(log, "a") as handle:
                handle.write(f"{self.drop_path_prob!r}\\n")
        h = torch.relu(self.bn(self.conv(x)))
        logits = self.fc(h.mean((2, 3)))
        if self.training and self.auxiliary_head is not None:
            return logits, self.auxiliary_head(h.flatten(1))
        return logits


def create_model(num_classes=10, *, auxiliary=False):
    return TinyAux(num_classes, auxiliary)
'''


@pytest.fixture
def root(tmp_path):
    write_cifar10(tmp_path / "data", per_file=8, n_test=16)  # 40 training images
    (tmp_path / "aux.py").write_text(AUX_MODEL)
    write_model(tmp_path / "tiny.py")
    return tmp_path


def _config(root, model="aux.py", out="run", **options) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 8, "progress_interval": 0, "eval_batch_size": 16}
    return TrainConfig(
        model=str(root / model),
        data_dir=str(root / "data"),
        out=str(root / out),
        **{**base, **options},
    )


# --- cutout -------------------------------------------------------------------------------------


def _darts_cutout(img: np.ndarray, y: int, x: int, length: int) -> np.ndarray:
    """quark0/darts utils.Cutout.__call__ with its random centre replaced by (y, x)."""
    h, w = img.shape[1], img.shape[2]
    mask = np.ones((h, w), np.float32)
    y1, y2 = np.clip(y - length // 2, 0, h), np.clip(y + length // 2, 0, h)
    x1, x2 = np.clip(x - length // 2, 0, w), np.clip(x + length // 2, 0, w)
    mask[y1:y2, x1:x2] = 0.0
    return img * mask[None]


@pytest.mark.parametrize(("length", "augment"), [(16, True), (5, True), (32, False)])
def test_cutout_is_darts_cutout_after_normalization(length: int, augment: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.zeros(50, dtype=torch.int64)
    norm = Normalizer([0.5, 0.4, 0.3], [0.2, 0.25, 0.3], torch.device("cpu"))

    def batches(cutout: int) -> list[torch.Tensor]:
        options = AugmentOptions(enabled=augment, pad_fill="black", cutout=cutout)
        maker = BatchMaker(images, labels, norm, options)
        return [x for x, _ in maker.train_batches(16, seed=3, epoch=2)]

    plain, cut = torch.cat(batches(0)), torch.cat(batches(length))
    rows, cols = cutout_centres(50, 32, 32, derive_seed(3, 2, "cutout"), torch.device("cpu"))
    expected = np.stack(
        [
            _darts_cutout(plain[i].numpy(), int(rows[i]), int(cols[i]), length)
            for i in range(len(plain))
        ]
    )
    np.testing.assert_array_equal(cut.numpy(), expected)
    assert (rows.min(), cols.min()) >= (0, 0) and (rows.max(), cols.max()) <= (31, 31)
    assert len(set(rows.tolist())) > 10  # centres vary over the image
    again = torch.cat(batches(length))
    assert torch.equal(again, cut)  # (seed, epoch) decide: a resumed epoch replays


# --- learning rate, drop-path, clipping, auxiliary loss -----------------------------------------


def test_cosine_schedule_is_torchs_cosine_annealing(root) -> None:
    config = _config(root, model="tiny.py", epochs=5, lr_schedule="cosine", lr=0.05)
    run_training(config)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5, eta_min=0.0)
    expected = []
    for _ in range(5):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    lrs = [row["lr"] for row in read_metrics(root / "run")]
    assert lrs == pytest.approx(expected, rel=1e-5)  # metrics.csv keeps 6 significant digits
    assert [config.lr_at(e) for e in range(1, 6)] == pytest.approx(expected, rel=1e-12)
    assert lrs[-1] == pytest.approx(0.05 * (1 + math.cos(math.pi * 4 / 5)) / 2, rel=1e-5)


def test_drop_path_rises_as_darts_sets_it(root, monkeypatch) -> None:
    log = root / "drop_path.log"
    monkeypatch.setenv("DERIVE_TEST_DROP_PATH_LOG", str(log))
    run_training(_config(root, epochs=4, drop_path=0.2))
    seen = [float(v) for v in log.read_text().split()]
    darts = [0.2 * epoch / 4 for epoch in range(4)]  # train.py: before 0-based epoch `epoch`
    assert seen == pytest.approx([p for p in darts for _ in range(5)])  # 5 batches per epoch
    assert [drop_path_at(0.2, e, 4) for e in range(1, 5)] == pytest.approx(darts)


def test_gradient_clipping_bounds_the_step(root) -> None:
    """One full batch, plain SGD: the weights move by exactly lr × (gradient clipped to norm C)."""

    def moved(**options) -> float:
        config = _config(
            root, model="tiny.py", out=f"run{len(options)}", epochs=1, batch_size=40, lr=1.0,
            momentum=0.0, nesterov=False, weight_decay=0.0, augment=False, **options,
        )  # fmt: skip
        before = build_model(config).state_dict()
        run_training(config)
        after = load_checkpoint(root / config.out / "checkpoint.pt")["model"]
        params = [k for k, v in before.items() if v.dtype.is_floating_point and "running" not in k]
        return math.sqrt(sum(float((after[k] - before[k]).pow(2).sum()) for k in params))

    assert moved() > 1e-2
    assert moved(grad_clip=1e-3) == pytest.approx(1e-3, rel=1e-4)


def test_auxiliary_loss_is_ce_plus_weighted_auxiliary_ce(root) -> None:
    """One full batch: the logged training loss is CE(logits) + 0.4·CE(auxiliary logits) at the init."""
    config = _config(root, epochs=1, batch_size=40, augment=False, auxiliary_weight=0.4)
    model = build_model(config).train()  # the same seeded init the run starts from
    run_training(config)
    summary = json.loads((root / "run" / "summary.json").read_text())
    norm = summary["dataset"]["normalization"]
    data = load_cifar("cifar10", str(root / "data"))
    mean, std = (torch.tensor(norm[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    x = (torch.from_numpy(data.train_images).float() / 255 - mean) / std
    y = torch.from_numpy(data.train_labels)
    with torch.no_grad():
        logits, aux = model(x)
    expected = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    assert read_metrics(root / "run")[0]["train_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert summary["model"]["parameters_auxiliary_head"] == 8 * 16 * 16 * 10 + 10
    assert (
        summary["model"]["parameters_without_auxiliary"]
        == summary["model"]["parameters"] - summary["model"]["parameters_auxiliary_head"]
    )


def test_options_the_model_cannot_honour_are_refused(root) -> None:
    with pytest.raises(UserError, match="has no auxiliary head"):
        build_model(_config(root, model="tiny.py", auxiliary_weight=0.4))
    with pytest.raises(UserError, match="has no auxiliary head"):
        build_model(TrainConfig(model="resnet20", data_dir="d", out="o", auxiliary_weight=0.4))
    with pytest.raises(UserError, match="no drop_path_prob"):
        build_model(_config(root, model="tiny.py", drop_path=0.1))
    lying = root / "lying.py"  # accepts auxiliary=True but returns plain logits
    lying.write_text(
        (root / "tiny.py")
        .read_text()
        .replace(
            "def create_model(num_classes=10):", "def create_model(num_classes=10, **options):"
        )
    )
    with pytest.raises(UserError, match="not \\(logits, auxiliary logits\\)"):
        build_model(_config(root, model="lying.py", auxiliary_weight=0.4))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("cutout", 33, "--cutout must be between 0"),
        ("cutout", -1, "--cutout must be between 0"),
        ("auxiliary_weight", 1.5, "--auxiliary-weight must be between 0"),
        ("drop_path", 1.0, "--drop-path must be >= 0 and < 1"),
        ("grad_clip", float("inf"), "--grad-clip must be a finite"),
        ("lr_schedule", "linear", "--lr-schedule must be one of"),
        ("recipe_name", "adam", "--recipe must be one of"),
    ],
)
def test_option_bounds(option: str, value: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        TrainConfig(model="m", data_dir="d", out="o", **{option: value})


# --- the recipe and its precedence --------------------------------------------------------------


def _parsed(*extra: str) -> TrainConfig:
    args = build_parser().parse_args(["train", "m.py", "--data-dir", "d", "--out", "o", *extra])
    return build_config(args)


def test_darts_eval_recipe_is_darts_train_py() -> None:
    config = _parsed("--recipe", "darts-eval")
    expected = {
        "batch_size": 96, "epochs": 600, "lr": 0.025, "momentum": 0.9, "nesterov": False,
        "weight_decay": 3e-4, "lr_schedule": "cosine", "cutout": 16, "auxiliary_weight": 0.4,
        "drop_path": 0.2, "grad_clip": 5.0, "paper_init": False, "pad_fill": "black", "pad": 4,
        "flip": True, "augment": True, "recipe_name": "darts-eval",
    }  # fmt: skip
    assert {k: getattr(config, k) for k in expected} == expected
    assert config.lr_at(1) == 0.025  # the last epoch: DARTS's scheduler at last_epoch 599 of 600
    assert config.lr_at(600) == pytest.approx(0.025 * (1 + math.cos(math.pi * 599 / 600)) / 2)


def test_explicit_options_override_the_recipe_even_at_their_defaults() -> None:
    config = _parsed(
        "--recipe", "darts-eval", "--batch-size", "64", "--nesterov", "--lr-schedule", "step",
        "--epochs", "1", "--cutout", "0", "--paper-init",
    )  # fmt: skip
    assert (config.batch_size, config.nesterov, config.lr_schedule, config.epochs) == (
        64,
        True,
        "step",
        1,
    )
    assert (config.cutout, config.paper_init, config.auxiliary_weight) == (0, True, 0.4)


def test_the_default_recipe_is_the_manual_designs_and_parser_defaults_agree() -> None:
    parsed = _parsed()
    assert parsed == recipe_config("appendix-d", model="m.py", data_dir="d", out="o")
    assert parsed == TrainConfig(model="m.py", data_dir="d", out="o")
    args = build_parser().parse_args(["train", "m.py", "--data-dir", "d", "--out", "o"])
    defaults = TrainConfig(model="m.py", data_dir="d", out="o").to_dict()
    for name in config_fields():
        if hasattr(args, name) and name not in ("lr_milestones",):
            assert getattr(args, name) == defaults[name], name
    assert set(RECIPES["darts-eval"]) <= set(config_fields())


# --- end to end: derive nas network → derive train --recipe darts-eval → --resume ---------------


def test_nas_network_trains_with_the_darts_recipe_and_resumes_exactly(root, capsys) -> None:
    nets = root / "nets"
    assert (
        main(["nas", "network", "darts_v2", "--out", str(nets), "--channels", "4", "--cells", "3"])
        == 0
    )
    model = nets / "darts_v2.py"
    assert capsys.readouterr().out == "" and model.is_file()  # the path is logged, not printed

    def train(out: str, epochs: int, *extra: str) -> int:
        return main(
            [
                "train", str(model), "--recipe", "darts-eval", "--epochs", str(epochs),
                "--batch-size", "8", "--data-dir", str(root / "data"), "--out", str(root / out),
                "--eval-batch-size", "16", "--progress-interval", "0", *extra,
            ]
        )  # fmt: skip

    assert train("whole", 2) == 0
    assert train("cut", 1) == 0
    assert train("cut", 2, "--resume") == 0  # 2 epochs of cosine and drop-path: epoch 1 is the same
    whole, cut = read_metrics(root / "whole"), read_metrics(root / "cut")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in cut]
    assert [r["lr"] for r in whole] == pytest.approx([0.025, 0.0125])
    a = load_checkpoint(root / "whole" / "checkpoint.pt")["model"]
    b = load_checkpoint(root / "cut" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any("auxiliary_head" in k for k in a)
    summary = json.loads((root / "whole" / "summary.json").read_text())
    assert summary["options"]["recipe_name"] == "darts-eval" and summary["status"] == "completed"
    assert summary["model"]["parameters_auxiliary_head"] > 0
    module = load_python_file(str(model))
    assert summary["model"]["parameters_without_auxiliary"] == sum(
        p.numel() for p in module.create_model(10).parameters()
    )
    # the recipe is part of what a resume checks
    capsys.readouterr()
    assert main(
        ["train", str(model), "--epochs", "3", "--batch-size", "8", "--data-dir", str(root / "data"),
         "--out", str(root / "whole"), "--resume"]
    ) == 2  # fmt: skip
    assert "cannot --resume" in capsys.readouterr().err


def test_darts_eval_options_in_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--recipe",
        "--lr-schedule",
        "--cutout",
        "--auxiliary-weight",
        "--drop-path",
        "--grad-clip",
    ):
        assert option in text
    assert "darts-eval" in textwrap.dedent(text)


def test_a_checkpoint_older_than_these_options_resumes_at_their_defaults(root) -> None:
    run_training(_config(root, model="tiny.py", epochs=1))
    path = root / "run" / "checkpoint.pt"
    state = load_checkpoint(path)
    new = ("lr_schedule", "cutout", "auxiliary_weight", "drop_path", "grad_clip", "recipe_name")
    state["recipe"] = {k: v for k, v in state["recipe"].items() if k not in new}
    state.pop("format")
    save_checkpoint(path, state)
    with pytest.raises(UserError, match="cutout 0 \\(checkpoint\\) vs 4"):
        run_training(_config(root, model="tiny.py", epochs=2, resume=True, cutout=4))
    run_training(_config(root, model="tiny.py", epochs=2, resume=True))
    assert len(read_metrics(root / "run")) == 2
