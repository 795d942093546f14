"""Training mixtures: several judgment sources over their own catalogs, weighted, with
graded (numeric) judgments; and the weighted losses they train with."""

from __future__ import annotations

import json

import pytest
import torch
from tests_support import TINY_CATALOG, TINY_JUDGMENTS

from shopsearch.errors import InvalidQueryError
from shopsearch.models.cross_encoder import _masked_cross_entropy, pairwise_rank_loss
from shopsearch.training.bi_encoder import multiple_negatives_ranking_loss
from shopsearch.training.config import TrainConfig
from shopsearch.training.data import load_mixture, prepare_mixture


@pytest.fixture
def graded(tmp_path):
    """The tiny judgments rewritten as numeric gains 0..2, as a second source."""
    gains = {"E": 2.0, "S": 1.0, "C": 0.33, "I": 0.0}
    path = tmp_path / "graded.jsonl"
    rows = [json.loads(line) for line in TINY_JUDGMENTS.read_text().splitlines()]
    path.write_text("\n".join(json.dumps({**r, "label": gains[r["label"]]}) for r in rows) + "\n")
    return path


def _config(graded, **overrides) -> TrainConfig:
    sources = [
        {"name": "esci", "catalog": str(TINY_CATALOG), "judgments": str(TINY_JUDGMENTS)},
        {
            "name": "graded",
            "catalog": str(TINY_CATALOG),
            "judgments": str(graded),
            "exact_min_gain": 1.67,
            "weight": 0.5,
        },
    ]
    data = {"hard_negatives": 0, "validation_fraction": 0.2, "test_fraction": 0.2}
    config = TrainConfig.from_dict({"task": "bi-encoder", "data": data, "sources": sources})
    return config.with_overrides(overrides)


def test_a_mixture_prefixes_ids_keeps_one_split_and_weighs_each_source(graded):
    config = _config(graded)
    sources = load_mixture(config)
    assert [s.name for s in sources] == ["esci", "graded"]
    assert all(p.id.startswith("graded:") for p in sources[1].products)
    assert all(j.product_id.startswith("esci:") for j in sources[0].judgments)
    data, per_source = prepare_mixture(config, sources)
    # both sources judge the same 5 query strings: each keeps the first source's part
    assert sorted(data.split.train + data.split.validation + data.split.test) == sorted(
        {j.query for j in sources[0].judgments}
    )
    for part in ("train", "validation", "test"):
        allowed = set(getattr(data.split, part))
        assert {ex.query for ex in getattr(data, part)} <= allowed
    assert per_source["esci"]["dropped_shared_queries"] == 0
    weights = {ex.product_id.split(":")[0]: ex.weight for ex in data.train}
    assert weights == {"esci": 1.0, "graded": 0.5}
    # graded gains >= 1.67 are Exact (0), 0 is Irrelevant (3), between: Substitute (1)
    graded_classes = {ex.gain: ex.relevance for ex in data.train if ex.product_id[:6] == "graded"}
    assert graded_classes.get(2.0, 0) == 0 and graded_classes.get(0.0, 3) == 3
    assert graded_classes.get(1.0, 1) == 1


def test_sources_are_checked_and_overridable(graded):
    config = _config(graded).with_overrides({"sources.graded.weight": "2"})
    assert config.sources[1].weight == 2.0
    with pytest.raises(InvalidQueryError, match="sources.weight must be > 0"):
        _config(graded).with_overrides({"sources.graded.weight": "0"})
    with pytest.raises(InvalidQueryError, match="names must differ"):
        TrainConfig.from_dict({"sources": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(InvalidQueryError, match="unknown training config key"):
        _config(graded).with_overrides({"sources.nope.weight": "1"})
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_max_train_queries_keeps_a_seeded_sample_of_training_queries(graded):
    full, _ = prepare_mixture(_config(graded), load_mixture(_config(graded)))
    config = _config(graded, **{"sources.esci.max_train_queries": "1"})
    sampled, summary = prepare_mixture(config, load_mixture(config))
    assert summary["esci"]["train_queries"] == 1 < len(full.split.train)
    assert sampled.split.validation == full.split.validation  # never touched


def test_equal_weights_change_nothing_and_a_heavier_row_counts_more():
    torch.manual_seed(0)
    q, p = torch.randn(4, 8), torch.randn(4, 8)
    plain = multiple_negatives_ranking_loss(q, p)
    assert torch.allclose(plain, multiple_negatives_ranking_loss(q, p, weights=torch.ones(4)))
    rows = torch.nn.functional.cross_entropy(
        20.0
        * torch.nn.functional.normalize(q, dim=-1)
        @ torch.nn.functional.normalize(p, dim=-1).T,
        torch.arange(4),
        reduction="none",
    )
    heavy = multiple_negatives_ranking_loss(q, p, weights=torch.tensor([3.0, 1, 1, 1]))
    assert torch.allclose(heavy, (3 * rows[0] + rows[1:].sum()) / 6)

    logits, labels = torch.randn(4, 4), torch.tensor([0, 3, -100, 1])
    assert torch.allclose(
        _masked_cross_entropy(logits, labels), _masked_cross_entropy(logits, labels, torch.ones(4))
    )
    scores, gains, groups = torch.randn(4), torch.tensor([1.0, 0, 1, 0]), torch.tensor([0, 0, 1, 1])
    base = pairwise_rank_loss(scores, gains, groups, 0.1)
    assert torch.allclose(base, pairwise_rank_loss(scores, gains, groups, 0.1, torch.ones(4)))
