"""The datasets `derive train` reads, behind the one interface the training loop uses.

- CIFAR-10/100 (`open_cifar`): the whole uint8 set on the device, batches made there (augment.py).
- ImageNet (`derive.train.imagenet.open_imagenet`): an ImageFolder tree, JPEGs decoded by DataLoader
  workers (torchvision), batches finished on the device.

Either way the loop gets a `TrainData` (derive.train.traindata): a training source, this rank's
part of the test set, and what summary.json and the checkpoint record about the data.
"""

from __future__ import annotations

import numpy as np
import torch

from derive.train.augment import BatchMaker, Normalizer
from derive.train.config import TrainConfig
from derive.train.data import DATASETS, channel_stats, load_cifar
from derive.train.distributed import Dist
from derive.train.download import download_cifar
from derive.train.imagenet import open_imagenet, scan_classes
from derive.train.sharding import eval_range
from derive.train.traindata import TrainData


def dataset_shape(config: TrainConfig) -> tuple[int, int]:
    """(number of classes, image side) before the data is read: CIFAR's, or ImageNet's class folders."""
    if config.dataset == "imagenet":
        return len(scan_classes(config.data_dir)), config.image_size
    return DATASETS[config.dataset].num_classes, 32


def open_data(
    config: TrainConfig, device: torch.device, memory_format: torch.memory_format, d: Dist
) -> TrainData:
    """Read the dataset `config` names (downloading CIFAR on rank 0 first if asked)."""
    if config.dataset == "imagenet":
        return open_imagenet(config, device, memory_format, d)
    return open_cifar(config, device, memory_format, d)


def open_cifar(
    config: TrainConfig, device: torch.device, memory_format: torch.memory_format, d: Dist
) -> TrainData:
    """CIFAR on the device: the training set whole, the test set this rank's part of it."""
    if config.download:
        d.on_main(download_cifar, config.dataset, config.data_dir, base_url=config.download_url)
    data = load_cifar(config.dataset, config.data_dir)
    mean, std = channel_stats(data.train_images)
    normalizer = Normalizer(mean, std, device)

    def on_device(
        images: np.ndarray, labels: np.ndarray
    ) -> BatchMaker:  # uint8, on the device once
        return BatchMaker(
            torch.from_numpy(np.ascontiguousarray(images)).to(device),
            torch.from_numpy(np.ascontiguousarray(labels)).to(device),
            normalizer,
            config.augment_options(),
            memory_format,
        )

    part = eval_range(len(data.test_labels), d.rank, d.world_size)
    fingerprint = data.fingerprint()
    resident = data.train_images.nbytes + data.test_images[part].nbytes
    return TrainData(
        name=data.name,
        num_classes=data.num_classes,
        input_size=32,
        train=on_device(data.train_images, data.train_labels),
        test=on_device(data.test_images[part], data.test_labels[part]),
        fingerprint=fingerprint,
        resident_bytes=resident,
        normalization={"mean": mean, "std": std},
        info={
            "name": data.name,
            "folder": str(data.folder),
            "train_size": len(data.train_labels),
            "test_size": len(data.test_labels),
            "num_classes": data.num_classes,
            "files": data.files,
            "fingerprint": fingerprint,
            "normalization": {
                "mean": mean,
                "std": std,
                "units": "pixel/255, per channel R,G,B, computed from the training images",
            },
        },
    )
