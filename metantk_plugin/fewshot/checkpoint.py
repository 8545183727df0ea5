"""Training checkpoints: written atomically
(:func:`~metantk_plugin.atomic_files.write_atomically`), read with
``torch.load(weights_only=True)`` (no code runs while loading), and checked against the
settings of the run that resumes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metantk_plugin import atomic_files
from metantk_plugin._deprecation import renamed

__all__ = ["CHECKPOINT_FORMAT", "SETTINGS_ADDED_LATER", "Checkpoint", "differing_settings", "load_checkpoint",
           "save_checkpoint"]

CHECKPOINT_FORMAT = "metantk-fewshot-checkpoint/1"


@dataclass
class Checkpoint:
    """``settings``: the run's settings (plain values); ``iteration``: steps done;
    ``state``: model/optimiser state; ``history``: the training curve so far."""

    settings: dict[str, Any]
    iteration: int
    state: dict[str, Any]
    history: dict[str, Any]


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "settings": checkpoint.settings, "iteration": checkpoint.iteration,
               "state": checkpoint.state, "history": checkpoint.history}
    atomic_files.write_atomically(path, lambda file: torch.save(payload, file), binary=True)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; a clear ValueError otherwise."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{path} is not a readable metantk checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a metantk few-shot checkpoint (format {found!r}, expected "
                         f"{CHECKPOINT_FORMAT!r})")
    return Checkpoint(payload["settings"], int(payload["iteration"]), payload["state"], payload["history"])


SETTINGS_ADDED_LATER: dict[str, Any] = {"query_precision": "float32"}
"""Settings added after checkpoints and results were first written, with the value that files
written before (which lack them) were made with."""


def differing_settings(saved: dict[str, Any], current: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """Names of the settings whose values differ (or exist on one side only, unless a missing
    one is in SETTINGS_ADDED_LATER with the other side's value), except ``ignore``."""
    keys = (set(saved) | set(current)) - set(ignore)

    def value(settings: dict[str, Any], key: str) -> Any:
        return settings.get(key, SETTINGS_ADDED_LATER.get(key, "<absent>"))

    return sorted(k for k in keys if value(saved, k) != value(current, k))


__getattr__ = renamed(__name__, {"write_atomically": "metantk_plugin.atomic_files.write_atomically"})
