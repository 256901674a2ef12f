"""Named training recipes: a preset of TrainConfig options; options given explicitly override it
(derive.train.config.recipe_config builds the config of one).

- `appendix-d` (the default): the papers' manual-design recipe, SCIS'23 appendix D: TrainConfig's
  own defaults (SGD Nesterov 0.9, lr 0.1 stepped ÷10 at 50 %/75 %, wd 1e-4, batch 64, 300 epochs).
- `darts-eval`: the evaluation of a searched cell, SCIS'23 §9.3 = DARTS `train.py` (Liu et al.
  2019): batch 96, 600 epochs, SGD lr 0.025 momentum 0.9 without Nesterov, weight decay 3e-4,
  cosine lr to 0, cutout 16, auxiliary weight 0.4, drop-path 0.2 rising linearly over the epochs,
  gradient clipping 5; PyTorch's default init (DARTS initializes nothing itself) and black padding
  (torchvision's RandomCrop(32, padding=4) before Normalize, as DARTS's pipeline does).
"""

from __future__ import annotations

RECIPES: dict[str, dict[str, object]] = {
    "appendix-d": {},
    "darts-eval": {
        "epochs": 600,
        "batch_size": 96,
        "lr": 0.025,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 3e-4,
        "lr_schedule": "cosine",
        "cutout": 16,
        "auxiliary_weight": 0.4,
        "drop_path": 0.2,
        "grad_clip": 5.0,
        "paper_init": False,
        "pad_fill": "black",
    },
}
DEFAULT_RECIPE = "appendix-d"
RECIPE_FIELDS: frozenset[str] = frozenset(key for preset in RECIPES.values() for key in preset)
"""Every option some recipe sets: the CLI passes these on only when they were given explicitly."""


__all__ = ["DEFAULT_RECIPE", "RECIPES", "RECIPE_FIELDS"]
