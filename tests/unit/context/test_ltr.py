"""The LightGBM lambdarank stage: it learns, explains additively, and round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from shopsearch.context.features import FEATURE_GROUPS, FEATURES
from shopsearch.context.ltr import PERSONAL_FEATURES, PERSONAL_MODEL_FILE, LTRModel
from shopsearch.errors import ModelLoadError
from shopsearch.evaluation.metrics import ndcg

BRAND = FEATURES.index("user_brand")
DENSE = FEATURES.index("dense")
PERSONAL_INDEX = tuple(FEATURES.index(name) for name in PERSONAL_FEATURES)


def synthetic(groups: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Relevance = dense similarity, plus a boost for the user's brand when a user exists."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(groups):
        x = rng.normal(size=(20, len(FEATURES))).astype(np.float32)
        personal = rng.random() < 0.5
        x[:, BRAND] = (rng.random(20) < 0.3) * personal
        utility = x[:, DENSE] + 2.0 * x[:, BRAND]
        y = np.digitize(utility, [0.5, 1.5, 2.5])
        xs.append(x)
        ys.append(y)
    return np.vstack(xs), np.concatenate(ys), [20] * groups


def mean_ndcg(model: LTRModel, x: np.ndarray, y: np.ndarray, groups: list[int]) -> float:
    values, start = [], 0
    for size in groups:
        scores = model.predict(x[start : start + size])
        ids = [str(i) for i in range(size)]
        gains = {str(i): float(g) for i, g in enumerate(y[start : start + size])}
        values.append(ndcg([ids[i] for i in np.argsort(-scores)], gains, 10))
        start += size
    return float(np.mean(values))


@pytest.fixture(scope="module")
def trained() -> tuple[LTRModel, tuple[np.ndarray, np.ndarray, list[int]]]:
    x, y, groups = synthetic(150, seed=1)
    return LTRModel.fit(x, y, groups, rounds=60), synthetic(40, seed=2)


def test_it_learns_the_personal_signal(trained):
    model, (x, y, groups) = trained
    learned = mean_ndcg(model, x, y, groups)
    shuffled = x.copy()
    shuffled[:, BRAND] = 0.0  # without the personal feature it must do worse
    assert learned > mean_ndcg(model, shuffled, y, groups) + 0.05
    assert model.feature_importance()["user_brand"] > 0


def test_explanations_sum_to_the_score(trained):
    model, (x, _, _) = trained
    scores = model.predict(x[:50])
    parts = model.explain(x[:50])
    assert set(parts[0]) == {*FEATURE_GROUPS, "base"}
    np.testing.assert_allclose([sum(p.values()) for p in parts], scores, rtol=1e-6, atol=1e-9)


def test_save_and_load_give_identical_scores(trained, tmp_path):
    model, (x, _, _) = trained
    loaded = LTRModel.load(model.save(tmp_path / "ltr"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ModelLoadError, match="no learning-to-rank model"):
        LTRModel.load(tmp_path / "missing")


def test_unbiased_lambdarank_takes_positions():
    x, y, groups = synthetic(60, seed=3)
    positions = np.tile(np.arange(1, 21), 60)
    model = LTRModel.fit(x, y, groups, positions=positions, rounds=20)
    assert model.predict(x[:5]).shape == (5,)


@pytest.fixture(scope="module")
def staged() -> tuple[LTRModel, LTRModel, tuple[np.ndarray, np.ndarray, list[int]]]:
    """A base model that never sees the personal columns, plus the personal stage."""
    x, y, groups = synthetic(150, seed=4)
    hidden = x.copy()
    hidden[:, list(PERSONAL_INDEX)] = 0.0
    base = LTRModel.fit(hidden, y, groups, rounds=60)
    vx, vy, vg = synthetic(40, seed=5)
    return base, base.fit_personal(x, y, groups, valid=(vx, vy, vg), rounds=60), (vx, vy, vg)


def test_the_personal_stage_adds_what_the_history_says(staged):
    base, personal, (x, y, groups) = staged
    assert personal.personal is not None and base.personal is None
    assert mean_ndcg(personal, x, y, groups) > mean_ndcg(base, x, y, groups) + 0.05
    assert personal.meta["personal"]["rounds"] >= 1


def test_without_a_profile_the_personal_stage_keeps_the_base_order(staged):
    base, personal, (x, _, _) = staged
    anonymous = x[:20].copy()
    anonymous[:, list(PERSONAL_INDEX)] = 0.0
    shift = personal.predict(anonymous) - base.predict(anonymous)
    np.testing.assert_allclose(shift, shift[0], atol=1e-9)  # a constant: same order


def test_a_stronger_affinity_never_lowers_the_score(staged):
    _, personal, (x, _, _) = staged
    rows = x[:200].copy()
    raised = rows.copy()
    raised[:, BRAND] += 1.0
    assert (personal.predict(raised) >= personal.predict(rows) - 1e-12).all()


def test_staged_explanations_sum_and_round_trip(staged, tmp_path):
    base, personal, (x, _, _) = staged
    parts = personal.explain(x[:30])
    np.testing.assert_allclose(
        [sum(p.values()) for p in parts], personal.predict(x[:30]), rtol=1e-6, atol=1e-9
    )
    assert any(p["user"] != 0.0 for p in parts)
    directory = personal.save(tmp_path / "ltr")
    assert (directory / PERSONAL_MODEL_FILE).is_file()
    np.testing.assert_array_equal(LTRModel.load(directory).predict(x), personal.predict(x))
    base.save(directory)  # a model without the stage removes the old stage file
    assert not (directory / PERSONAL_MODEL_FILE).exists()
    np.testing.assert_array_equal(LTRModel.load(directory).predict(x), base.predict(x))
