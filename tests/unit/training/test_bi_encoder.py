"""train_bi_encoder on a tiny randomly initialised BERT wrapped as a sentence-transformers model.

Toy task: products are "<color> <item>", queries are a color; a product is Exact for its own
color and Irrelevant for some others, so a bi-encoder can learn to match colors.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tests_support
import torch

from shopsearch.errors import InvalidQueryError
from shopsearch.training.bi_encoder import (
    DistinctQueryBatchSampler,
    build_triples,
    multiple_negatives_ranking_loss,
    train_bi_encoder,
)
from shopsearch.training.config import TrainConfig
from shopsearch.training.data import PairExample

COLORS = ["red", "blue", "green", "black", "white", "pink", "grey", "brown"]
ITEMS = ["shoe", "mug", "hat", "lamp"]
WORDS = [*COLORS, *ITEMS]
TEXTS = ["red shoe", "blue mug", "pink", "grey lamp hat"]


def build_tiny_sentence_transformer(path: Path) -> Path:
    return tests_support.build_tiny_sentence_transformer(path, WORDS)


def _pairs(queries: list[str]) -> list[PairExample]:
    pairs = []
    for query in queries:
        for color in COLORS:
            for item_id, item in enumerate(ITEMS):
                match = color == query
                if not match and (COLORS.index(color) + item_id) % 5:
                    continue  # a few Irrelevant products per query
                pairs.append(
                    PairExample(
                        query=query,
                        product_id=f"{color}-{item}",
                        text=f"{color} {item}",
                        relevance=0 if match else 3,
                        category=item_id,
                        gain=1.0 if match else 0.0,
                    )
                )
    return pairs


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory) -> Path:
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="module")
def data() -> SimpleNamespace:
    return SimpleNamespace(train=_pairs(COLORS[:6]), validation=_pairs(COLORS[6:]))


def make_config(tiny_st: Path, **overrides: str) -> TrainConfig:
    settings = {
        "task": "bi-encoder",
        "base_model": str(tiny_st),
        "data.max_length": "16",
        "optim.lr": "5e-3",
        "optim.warmup_ratio": "0",
        "train.batch_size": "4",
        "train.epochs": "2",
        "train.device": "cpu",
        "train.bf16": "off",
        "train.patience": "10",
    }
    return TrainConfig().with_overrides({**settings, **overrides})


def _encode(model, texts=TEXTS) -> np.ndarray:
    return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


# --------------------------------------------------------------------------- triples, batches


def test_triples_pair_exact_products_with_negatives_of_the_same_query(data):
    extra = [
        PairExample("red", "red-shoe", "red shoe", 0, 0, 1.0),  # a duplicate judgment
        PairExample("red", "blue-cap", "blue cap", 1, 0, 0.1),  # S: neither side
        PairExample("red", "mined-1", "pink lamp", 3, 3, 0.0, mined=True),
        PairExample("lonely", "lonely-1", "brown mug", 0, 1, 1.0),  # no negatives
    ]
    triples = build_triples([*data.train, *extra], seed=1)
    red = [t for t in triples if t.query == "red"]
    assert sorted(t.positive_id for t in red) == [f"red-{i}" for i in sorted(ITEMS)]
    negatives = {
        ex.product_id for ex in [*data.train, *extra] if ex.query == "red" and ex.relevance == 3
    }
    assert {t.negative_id for t in red} <= negatives
    assert len({t.negative_id for t in red}) == min(len(red), len(negatives))  # dealt round-robin
    assert [(t.negative, t.negative_id) for t in triples if t.query == "lonely"] == [(None, None)]
    assert len(triples) == sum(ex.relevance == 0 for ex in data.train) + 1
    assert build_triples(data.train, seed=1, epoch=0) == build_triples(data.train, seed=1, epoch=0)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batch_sampler_never_puts_one_query_twice_in_a_batch(batch_size):
    rng = random.Random(batch_size)
    for trial in range(20):
        keys = [f"q{rng.randrange(12)}" for _ in range(rng.randrange(1, 80))]
        sampler = DistinctQueryBatchSampler(keys, batch_size, seed=trial)
        for epoch in range(2):
            sampler.set_epoch(epoch)
            batches = list(sampler)
            for batch in batches:
                assert len(batch) <= batch_size
                assert len({keys[i] for i in batch}) == len(batch)
            assert sorted(i for b in batches for i in b) == list(range(len(keys)))
            most = max(keys.count(k) for k in set(keys))
            assert len(batches) == len(sampler) == max(most, math.ceil(len(keys) / batch_size))


def test_batch_sampler_is_seeded_per_epoch():
    keys = [f"q{i % 7}" for i in range(50)]
    sampler = DistinctQueryBatchSampler(keys, 4, seed=3)
    assert sampler.batches(0) == DistinctQueryBatchSampler(keys, 4, seed=3).batches(0)
    assert sampler.batches(0) != sampler.batches(1)


# --------------------------------------------------------------------------- loss


def test_loss_matches_sentence_transformers(tiny_st):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(0)
    q, p, n = torch.randn(5, 32), torch.randn(5, 32), torch.randn(5, 32)
    reference = MultipleNegativesRankingLoss(SentenceTransformer(str(tiny_st), device="cpu"))
    expected = reference.compute_loss_from_embeddings([q, p, n], labels=None)
    torch.testing.assert_close(multiple_negatives_ranking_loss(q, p, n), expected)
    expected = reference.compute_loss_from_embeddings([q, p], labels=None)
    torch.testing.assert_close(multiple_negatives_ranking_loss(q, p), expected)


def test_excluded_candidates_are_left_out():
    torch.manual_seed(1)
    q, p, n = torch.randn(3, 8), torch.randn(3, 8), torch.randn(2, 8)
    exclude = torch.zeros(3, 5, dtype=torch.bool)
    exclude[:, 4] = True  # the last negative is excluded for every row
    torch.testing.assert_close(
        multiple_negatives_ranking_loss(q, p, n, exclude=exclude),
        multiple_negatives_ranking_loss(q, p, n[:1]),
    )


# --------------------------------------------------------------------------- training


def test_a_few_steps_make_the_loss_fall(tiny_st, data, tmp_path):
    config = make_config(tiny_st, **{"train.epochs": "5"})
    result = train_bi_encoder(config, data, tmp_path / "run")
    losses = [s["loss"] for s in result.history["steps"]]
    assert len(losses) == 5 * 6  # 24 triples, 6 queries of 4: 6 batches of 4 per epoch
    assert np.mean(losses[-6:]) < 0.7 * np.mean(losses[:6])
    evals = result.history["evals"]
    assert [e["step"] for e in evals] == [0, 6, 12, 18, 24, 30]
    assert result.best_metric == max(e["val_ndcg"] for e in evals)
    assert [e["epoch"] for e in result.history["epochs"]] == [0, 1, 2, 3, 4]
    assert not result.stopped_early and result.seconds > 0
    assert result.total_params - result.trainable_params == 32 * 32 + 32  # the unused pooler
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["steps"][0]["step"] == 1 and history["plan"]["with_hard_negative"] == 24
    assert TrainConfig.load(tmp_path / "run" / "config.json") == config


@pytest.mark.parametrize("lora", [False, True])
def test_best_reloads_with_the_embeddings_it_had_in_training(tiny_st, data, tmp_path, lora):
    from sentence_transformers import SentenceTransformer

    from shopsearch.models.encoders import EncoderConfig, load_encoder

    evals = iter(range(100))  # always improves: best is the last step

    def counter(model_dir: Path) -> dict[str, float]:
        assert (model_dir / "modules.json").is_file()
        return {"val_count": float(next(evals))}

    overrides = {"train.early_stopping_metric": "val_count", "lora.enabled": str(lora).lower()}
    if lora:
        overrides["optim.lr"] = "2e-2"
    config = make_config(tiny_st, **overrides)
    result = train_bi_encoder(config, data, tmp_path / "run", evaluate=counter)
    assert result.best_step == 12 and result.best_dir == tmp_path / "run" / "best"
    assert (result.trainable_params < result.total_params / 2) == lora
    for name in ("tokenizer.json", "config.json", "model.safetensors", "1_Pooling/config.json"):
        assert (result.best_dir / name).is_file(), name  # what the ONNX export reads
    assert not (tmp_path / "run" / "candidate").exists()

    trained = _encode(result.model)
    base = _encode(SentenceTransformer(str(tiny_st), device="cpu"))
    assert not np.allclose(trained, base, atol=1e-3)  # training changed the model
    reloaded = _encode(SentenceTransformer(str(result.best_dir), device="cpu"))
    np.testing.assert_allclose(reloaded, trained, atol=1e-5)
    encoder = load_encoder(EncoderConfig(name=str(result.best_dir), backend="torch"), device="cpu")
    np.testing.assert_allclose(encoder.encode_queries(TEXTS), trained, atol=1e-5)


def test_early_stopping_when_the_metric_cannot_improve(tiny_st, data, tmp_path):
    from sentence_transformers import SentenceTransformer

    calls = []

    def constant(model_dir: Path) -> dict[str, float]:
        calls.append(model_dir)
        return {"val_custom": 0.5}

    config = make_config(
        tiny_st,
        **{"train.epochs": "6", "train.patience": "2", "train.early_stopping_metric": "val_custom"},
    )
    result = train_bi_encoder(config, data, tmp_path / "run", evaluate=constant)
    assert result.stopped_early
    assert len(calls) == 3 == len(result.history["evals"])  # step 0, then 2 without improvement
    assert result.best_step == 0 and result.best_metric == 0.5
    assert len(result.history["steps"]) == 2 * 6  # stopped after epoch 2 of 6
    base = _encode(SentenceTransformer(str(tiny_st), device="cpu"))
    np.testing.assert_allclose(_encode(result.model), base, atol=1e-5)  # the untrained model
    reloaded = _encode(SentenceTransformer(str(result.best_dir), device="cpu"))
    np.testing.assert_allclose(reloaded, base, atol=1e-5)


def test_gradient_accumulation_and_max_steps(tiny_st, data, tmp_path):
    config = make_config(tiny_st, **{"train.grad_accumulation": "4", "train.epochs": "3"})
    result = train_bi_encoder(config, data, tmp_path / "run")
    assert len(result.history["steps"]) == 3 * 2  # 6 batches in groups of 4
    config = make_config(tiny_st, **{"train.max_steps": "4", "optim.warmup_ratio": "0.5"})
    result = train_bi_encoder(config, data, tmp_path / "run2")
    lrs = [s["lr"] for s in result.history["steps"]]
    assert len(lrs) == 4 and lrs[0] == 0.0 and lrs[2] == pytest.approx(5e-3) and lrs[3] < lrs[2]


def test_freezing(tiny_st, data, tmp_path):
    config = make_config(tiny_st, **{"train.freeze": "bottom:1", "train.max_steps": "1"})
    result = train_bi_encoder(config, data, tmp_path / "run")
    assert 0 < result.trainable_params < result.total_params
    with pytest.raises(InvalidQueryError, match="nothing to train"):
        train_bi_encoder(make_config(tiny_st, **{"train.freeze": "all"}), data, tmp_path / "run2")


def test_errors(tiny_st, data, tmp_path):
    no_exact = SimpleNamespace(
        train=[ex for ex in data.train if ex.relevance != 0], validation=data.validation
    )
    with pytest.raises(InvalidQueryError, match="no training triples"):
        train_bi_encoder(make_config(tiny_st), no_exact, tmp_path / "a")
    config = make_config(tiny_st, **{"train.early_stopping_metric": "val_nope"})
    with pytest.raises(InvalidQueryError, match="val_nope"):
        train_bi_encoder(config, data, tmp_path / "b")
