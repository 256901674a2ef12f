"""Training (`derive train`: CIFAR or ImageNet, one process or many under torchrun) and learning
curves (`derive plot`).

    from derive.train import TrainConfig, run_training
    summary = run_training(TrainConfig(model="hbnet56", dataset="cifar10", data_dir="~/data", out="runs/hb56"))

One job per module: `data` reads and checks the official CIFAR files, `download` fetches and safely
unpacks them, `augment` makes normalized, cropped and flipped batches on the device, `imagenet` scans
an ImageFolder tree and loads it, `sources` opens either as the one interface the loop reads
(`traindata`), `sharding` splits each global step across ranks, `distributed` holds torchrun/DDP and the collectives, `config` holds
the options (defaults: the papers' recipe), `loop` trains and evaluates, `checkpoint` and `runfiles`
write the run directory, `progress` draws the progress line, `curves` draws learning curves.
"""

from __future__ import annotations

import importlib

# Exports are resolved on first use, so `derive plot` (derive.train.curves) does not pay for importing torch.
_EXPORTS = {
    "CifarData": "derive.train.data",
    "TrainConfig": "derive.train.config",
    "TrainingDiverged": "derive.train.loop",
    "channel_stats": "derive.train.data",
    "download_cifar": "derive.train.download",
    "load_cifar": "derive.train.data",
    "read_metrics": "derive.train.runfiles",
    "run_training": "derive.train.loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'derive.train' has no attribute {name!r}")
