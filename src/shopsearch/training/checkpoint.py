"""A run's resumable checkpoint: model, optimizer, scheduler, RNG states and loop state.

``checkpoint/state.pt`` is replaced atomically, so a crash mid-write keeps the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shopsearch.training.runtime import rng_states, set_rng_states

__all__ = ["has_checkpoint", "load_checkpoint", "save_checkpoint"]

_CHECKPOINT_FILE = "state.pt"


def has_checkpoint(path: Path) -> bool:
    return (path / _CHECKPOINT_FILE).is_file()


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loop: Mapping[str, Any],
    epoch: int,
) -> None:
    """Save everything needed to continue; ``loop`` is the loop's own state (plain data)."""
    path.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loop": dict(loop),
        "epoch": epoch,
        "rng": rng_states(),
    }
    tmp = path / (_CHECKPOINT_FILE + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path / _CHECKPOINT_FILE)


def load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG states in place; the saved loop state."""
    payload = torch.load(path / _CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    set_rng_states(payload["rng"])
    return dict(payload["loop"])
