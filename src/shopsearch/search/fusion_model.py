"""A learned fusion model: LightGBM lambdarank over :data:`~.fusion_features.FUSION_FEATURES`,
kept in ``DIR/fusion/`` (``model.txt`` and ``fusion.json``: what it was trained on and
how it did on validation queries against the retrievers alone and RRF).

``shopsearch fusion train DIR --judgments FILE`` writes it (:mod:`shopsearch.training.fusion`)
only when it beats the better single retriever and RRF on the validation queries; the
``hybrid`` pipeline then fuses with it, and with RRF where none is installed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.context.ltr import load_lightgbm
from shopsearch.errors import ModelLoadError
from shopsearch.search.fusion_features import FUSION_FEATURES

__all__ = ["FUSION_DIR", "FusionModel"]

FUSION_DIR = "fusion"
MODEL_FILE = "model.txt"
META_FILE = "fusion.json"


class FusionModel:
    """A booster over the fusion features, and its metadata."""

    def __init__(self, booster: Any, meta: Mapping[str, Any] | None = None) -> None:
        names = list(booster.feature_name())
        if names != list(FUSION_FEATURES):
            raise ModelLoadError(
                f"the fusion model was trained on features {names}, this version computes "
                f"{list(FUSION_FEATURES)}: retrain it (shopsearch fusion train)"
            )
        self.booster = booster
        self.meta = dict(meta or {})

    def predict(self, features: np.ndarray) -> np.ndarray:
        if features.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)

    def save(self, directory: str | Path) -> Path:
        """Write into ``directory`` atomically: a reader sees the old model or the new one."""
        root = Path(directory)
        tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.booster.save_model(str(tmp / MODEL_FILE))
        meta = {**self.meta, "features": list(FUSION_FEATURES)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        old = root.with_name(f".{root.name}.old-{os.getpid()}")
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
        return root

    @classmethod
    def load(cls, directory: str | Path) -> FusionModel:
        root = Path(directory)
        if not (root / MODEL_FILE).is_file():
            raise ModelLoadError(f"no fusion model in {root} ({MODEL_FILE} missing)")
        booster = load_lightgbm().Booster(model_file=str(root / MODEL_FILE))
        meta = {}
        if (root / META_FILE).is_file():
            meta = json.loads((root / META_FILE).read_text(encoding="utf-8"))
        return cls(booster, meta)
