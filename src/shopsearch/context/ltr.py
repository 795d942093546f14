"""Learning to rank over context features: LightGBM lambdarank, with explanations.

``LTRModel.fit`` trains a lambdarank model on query groups; with ``positions`` (the rank at
which each logged product was shown) it uses LightGBM's unbiased lambdarank, which learns
a bias factor per position so that clicks on top results are not mistaken for relevance.
``explain`` splits each score into per-group contributions (TreeSHAP, ``pred_contrib``)
plus a base value; they sum to the score exactly.

>>> model = LTRModel.load("indexes/esci-us/ltr")                 # doctest: +SKIP
>>> scores = model.predict(matrix); parts = model.explain(matrix)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.context.features import FEATURE_GROUPS, FEATURES
from shopsearch.errors import MissingDependencyError, ModelLoadError

__all__ = ["DEFAULT_PARAMS", "LTRModel", "MODEL_FILE"]

MODEL_FILE = "model.txt"
META_FILE = "ltr.json"
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambdarank_truncation_level": 20,
    "verbosity": -1,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 13,
}


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("lightgbm", "") from exc
    return lightgbm


class LTRModel:
    """A LightGBM booster over :data:`FEATURES`, saved as ``model.txt`` + ``ltr.json``."""

    def __init__(self, booster: Any, meta: Mapping[str, Any] | None = None) -> None:
        self.booster = booster
        self.meta = dict(meta or {})
        names = list(booster.feature_name())
        if names != list(FEATURES):
            raise ModelLoadError(
                f"the LTR model was trained on features {names}, this version computes "
                f"{list(FEATURES)}: retrain it"
            )

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        groups: Sequence[int],
        *,
        positions: np.ndarray | None = None,
        valid: tuple[np.ndarray, np.ndarray, Sequence[int]] | None = None,
        params: Mapping[str, Any] | None = None,
        rounds: int = 300,
        early_stopping: int = 30,
        meta: Mapping[str, Any] | None = None,
    ) -> LTRModel:
        """Train on query groups (``groups``: rows per query, in order). Labels are grades."""
        lgb = _lightgbm()
        settings = {**DEFAULT_PARAMS, **(params or {})}
        train = lgb.Dataset(
            features,
            label=labels,
            group=list(groups),
            position=positions,
            feature_name=list(FEATURES),
            free_raw_data=False,
        )
        callbacks = []
        valid_sets = []
        if valid is not None:
            vx, vy, vg = valid
            valid_sets.append(lgb.Dataset(vx, label=vy, group=list(vg), reference=train))
            callbacks.append(lgb.early_stopping(early_stopping, verbose=False))
        booster = lgb.train(
            settings,
            train,
            num_boost_round=rounds,
            valid_sets=valid_sets or None,
            callbacks=callbacks,
        )
        info = {
            "params": settings,
            "rounds": booster.best_iteration or booster.current_iteration(),
            "train_rows": int(len(labels)),
            "train_groups": len(groups),
            **(meta or {}),
        }
        return cls(booster, info)

    def predict(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0, dtype=np.float64)
        # One thread: for a page of candidates the pool's start-up costs more than it saves.
        return np.asarray(
            self.booster.predict(features, num_iteration=self._rounds(), num_threads=1)
        )

    def explain(self, features: np.ndarray) -> list[dict[str, float]]:
        """Per row: the contribution of each feature group and ``base``; they sum to the score."""
        if len(features) == 0:
            return []
        contrib = np.asarray(
            self.booster.predict(
                features, num_iteration=self._rounds(), pred_contrib=True, num_threads=1
            )
        )
        index = {name: i for i, name in enumerate(FEATURES)}
        rows = []
        for values in contrib:
            row = {
                group: float(sum(values[index[f]] for f in names))
                for group, names in FEATURE_GROUPS.items()
            }
            row["base"] = float(values[-1])
            rows.append(row)
        return rows

    def feature_importance(self) -> dict[str, float]:
        gains = self.booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(FEATURES, gains, strict=True)}

    def _rounds(self) -> int | None:
        rounds = self.meta.get("rounds")
        return int(rounds) if rounds else None

    def save(self, directory: str | Path) -> Path:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / (MODEL_FILE + ".tmp")
        self.booster.save_model(str(tmp))
        tmp.replace(root / MODEL_FILE)
        meta = {**self.meta, "features": list(FEATURES), "groups": FEATURE_GROUPS}
        (root / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return root

    @classmethod
    def load(cls, directory: str | Path) -> LTRModel:
        root = Path(directory)
        if not (root / MODEL_FILE).is_file():
            raise ModelLoadError(f"no learning-to-rank model in {root} ({MODEL_FILE} missing)")
        lgb = _lightgbm()
        booster = lgb.Booster(model_file=str(root / MODEL_FILE))
        meta = {}
        if (root / META_FILE).is_file():
            meta = json.loads((root / META_FILE).read_text())
        return cls(booster, meta)
