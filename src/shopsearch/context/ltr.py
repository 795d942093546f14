"""Learning to rank over context features: LightGBM lambdarank, with explanations.

``LTRModel.fit`` trains a lambdarank model on query groups; with ``positions`` (the rank at
which each logged product was shown) it uses LightGBM's unbiased lambdarank, which learns
a bias factor per position so that clicks on top results are not mistaken for relevance.
``fit_personal`` adds a second stage over the shopper's own context only (user and session
features), trained from the first model's scores on logged searches and monotone in every
affinity: it learns what a shopper's history adds, and with no history it changes nothing.
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

__all__ = [
    "DEFAULT_PARAMS",
    "LTRModel",
    "MODEL_FILE",
    "PERSONAL_COLUMNS",
    "PERSONAL_FEATURES",
    "PERSONAL_MODEL_FILE",
]

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
#: The shopper's own context: what the personal stage (a residual on top of the base model)
#: reads. The base model never sees them (they are zero in its training rows).
PERSONAL_FEATURES: tuple[str, ...] = (*FEATURE_GROUPS["user"], *FEATURE_GROUPS["session"])
#: Their column indexes in a :func:`~.features.feature_matrix`.
PERSONAL_COLUMNS = np.array([FEATURES.index(name) for name in PERSONAL_FEATURES])
PERSONAL_MODEL_FILE = "personal.txt"
#: Monotone constraints of the personal stage: a stronger affinity to the product's brand,
#: category or colour, a better price fit or a closer history embedding may only raise its
#: score (history sizes are the same for every candidate of a search: unconstrained).
PERSONAL_MONOTONE = [0 if name.endswith("_size") else 1 for name in PERSONAL_FEATURES]


def load_lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("lightgbm", "") from exc
    return lightgbm


class LTRModel:
    """A LightGBM booster over :data:`FEATURES`, saved as ``model.txt`` + ``ltr.json``,
    optionally with a personal stage (``personal.txt``).

    The personal stage is a second booster over :data:`PERSONAL_FEATURES` only, trained on
    logged searches with the base model's scores as its starting point (LightGBM
    ``init_score``), so it learns only what the shopper's own history adds. Without a
    profile its input is all zeros, a constant: anonymous and cold-start rankings are
    exactly the base model's. Score = base score + personal score.
    """

    def __init__(
        self, booster: Any, meta: Mapping[str, Any] | None = None, personal: Any = None
    ) -> None:
        self.booster = booster
        self.personal = personal
        self.meta = dict(meta or {})
        names = [list(booster.feature_name())]
        expected = [list(FEATURES)]
        if personal is not None:
            names.append(list(personal.feature_name()))
            expected.append(list(PERSONAL_FEATURES))
        if names != expected:
            raise ModelLoadError(
                f"the LTR model was trained on features {names}, this version computes "
                f"{expected}: retrain it"
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
        settings = {**DEFAULT_PARAMS, **(params or {})}
        booster = _train(
            features,
            labels,
            groups,
            list(FEATURES),
            positions=positions,
            valid=valid,
            params=settings,
            rounds=rounds,
            early_stopping=early_stopping,
        )
        info = {
            "params": settings,
            "rounds": booster.best_iteration or booster.current_iteration(),
            "train_rows": int(len(labels)),
            "train_groups": len(groups),
            **(meta or {}),
        }
        return cls(booster, info)

    def fit_personal(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        groups: Sequence[int],
        *,
        positions: np.ndarray | None = None,
        valid: tuple[np.ndarray, np.ndarray, Sequence[int]] | None = None,
        params: Mapping[str, Any] | None = None,
        rounds: int = 300,
        early_stopping: int = 30,
    ) -> LTRModel:
        """Add the personal stage, learned on groups that carry a shopper's context.

        Starts from this model's scores; early stopping on ``valid`` keeps it from adding
        more than the validation groups support (possibly nothing: 1 round of ~0).
        """
        settings = {
            **DEFAULT_PARAMS,
            "monotone_constraints": PERSONAL_MONOTONE,
            "monotone_constraints_method": "advanced",
            **(params or {}),
        }
        init = self._base_scores(features)
        valid_personal = None
        if valid is not None:
            vx, vy, vg = valid
            valid_personal = (vx[:, PERSONAL_COLUMNS], vy, vg, self._base_scores(vx))
        personal = _train(
            features[:, PERSONAL_COLUMNS],
            labels,
            groups,
            list(PERSONAL_FEATURES),
            positions=positions,
            valid=valid_personal,
            params=settings,
            rounds=rounds,
            early_stopping=early_stopping,
            init_score=init,
        )
        meta = {
            **self.meta,
            "personal": {
                "rounds": personal.best_iteration or personal.current_iteration(),
                "train_rows": int(len(labels)),
                "train_groups": len(groups),
                "params": settings,
            },
        }
        return LTRModel(self.booster, meta, personal)

    def predict(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0, dtype=np.float64)
        scores = self._base_scores(features)
        if self.personal is not None:
            scores = scores + np.asarray(
                self.personal.predict(
                    features[:, PERSONAL_COLUMNS],
                    num_iteration=self._rounds("personal"),
                    num_threads=1,
                )
            )
        return scores

    def _base_scores(self, features: np.ndarray) -> np.ndarray:
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
        values = contrib[:, :-1].copy()
        base = contrib[:, -1].copy()
        if self.personal is not None:
            extra = np.asarray(
                self.personal.predict(
                    features[:, PERSONAL_COLUMNS],
                    num_iteration=self._rounds("personal"),
                    pred_contrib=True,
                    num_threads=1,
                )
            )
            values[:, PERSONAL_COLUMNS] += extra[:, :-1]
            base += extra[:, -1]
        index = {name: i for i, name in enumerate(FEATURES)}
        rows = []
        for row, bias in zip(values, base.tolist(), strict=True):
            parts = {
                group: float(sum(row[index[f]] for f in names))
                for group, names in FEATURE_GROUPS.items()
            }
            parts["base"] = float(bias)
            rows.append(parts)
        return rows

    def feature_importance(self) -> dict[str, float]:
        gains = self.booster.feature_importance(importance_type="gain")
        out = {name: float(g) for name, g in zip(FEATURES, gains, strict=True)}
        if self.personal is not None:
            extra = self.personal.feature_importance(importance_type="gain")
            for name, g in zip(PERSONAL_FEATURES, extra, strict=True):
                out[name] += float(g)
        return out

    def _rounds(self, stage: str | None = None) -> int | None:
        meta = self.meta.get(stage, {}) if stage else self.meta
        rounds = meta.get("rounds") if isinstance(meta, Mapping) else None
        return int(rounds) if rounds else None

    def save(self, directory: str | Path) -> Path:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        stages = [(MODEL_FILE, self.booster)]
        if self.personal is not None:
            stages.append((PERSONAL_MODEL_FILE, self.personal))
        elif (root / PERSONAL_MODEL_FILE).exists():
            (root / PERSONAL_MODEL_FILE).unlink()
        for name, booster in stages:
            tmp = root / (name + ".tmp")
            booster.save_model(str(tmp))
            tmp.replace(root / name)
        meta = {**self.meta, "features": list(FEATURES), "groups": FEATURE_GROUPS}
        (root / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return root

    @classmethod
    def load(cls, directory: str | Path) -> LTRModel:
        root = Path(directory)
        if not (root / MODEL_FILE).is_file():
            raise ModelLoadError(f"no learning-to-rank model in {root} ({MODEL_FILE} missing)")
        lgb = load_lightgbm()
        booster = lgb.Booster(model_file=str(root / MODEL_FILE))
        personal = None
        if (root / PERSONAL_MODEL_FILE).is_file():
            personal = lgb.Booster(model_file=str(root / PERSONAL_MODEL_FILE))
        meta = {}
        if (root / META_FILE).is_file():
            meta = json.loads((root / META_FILE).read_text())
        return cls(booster, meta, personal)


def _train(
    features: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[int],
    names: list[str],
    *,
    positions: np.ndarray | None,
    valid: tuple[Any, ...] | None,
    params: Mapping[str, Any],
    rounds: int,
    early_stopping: int,
    init_score: np.ndarray | None = None,
) -> Any:
    lgb = load_lightgbm()
    train = lgb.Dataset(
        features,
        label=labels,
        group=list(groups),
        position=positions,
        init_score=init_score,
        feature_name=names,
        free_raw_data=False,
    )
    callbacks = []
    valid_sets = []
    if valid is not None:
        vx, vy, vg, *rest = valid
        valid_sets.append(
            lgb.Dataset(
                vx, label=vy, group=list(vg), init_score=rest[0] if rest else None, reference=train
            )
        )
        callbacks.append(lgb.early_stopping(early_stopping, verbose=False))
    return lgb.train(
        dict(params),
        train,
        num_boost_round=rounds,
        valid_sets=valid_sets or None,
        callbacks=callbacks,
    )
