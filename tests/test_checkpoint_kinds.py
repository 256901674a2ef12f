"""A search's checkpoint is read by the search alone (it gives the columns of its history rows;
tests/test_nas_search_cli.py resumes one): training refuses it in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from derive.errors import UserError
from derive.train.checkpoint import FORMAT, load_checkpoint


def _search_state(path: Path) -> Path:
    torch.save({"format": FORMAT, "kind": "nas-search", "epoch": 0, "history": []}, path)
    return path


def test_training_refuses_a_search_checkpoint(tmp_path: Path) -> None:
    path = _search_state(tmp_path / "checkpoint.pt")
    with pytest.raises(UserError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "architecture search's checkpoint" in message and "\n" not in message
