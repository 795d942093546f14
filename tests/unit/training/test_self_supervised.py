"""Learning without judgments: pseudo-queries from the catalog, and the data they make."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tests_support import TINY_CATALOG

from shopsearch.catalog.loaders import load_catalog
from shopsearch.catalog.schema import Product
from shopsearch.errors import InvalidQueryError
from shopsearch.training.config import TrainConfig
from shopsearch.training.data import IRRELEVANT
from shopsearch.training.self_supervised import main_clause, pseudo_queries, self_supervised_data

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "self_supervised.toml"
DRYER = Product(id="1", title="Samsung 7.2 cu. ft. Electric Dryer in White", brand="Samsung")


def test_the_main_clause_ends_at_the_first_break():
    assert main_clause(DRYER.title)[-2:] == ["Electric", "Dryer"]
    assert main_clause("Kit, 3 pieces") == ["Kit"]
    assert main_clause("Faucet Trim Kit with Valve - Chrome")[-1] == "Kit"


def test_pseudo_queries_are_short_lower_case_and_made_of_the_products_words():
    rng = random.Random(3)
    words = {w.lower() for w in DRYER.title.split()} | {"samsung"}
    for _ in range(50):
        (query,) = pseudo_queries(DRYER, rng, word_dropout=0.0, typo_rate=0.0)
        assert query == query.lower() and 1 <= len(query.split()) <= 5
        assert set(query.split()) <= words, query


def test_typos_and_dropout_only_change_the_query_not_the_product():
    rng = random.Random(5)
    queries = [pseudo_queries(DRYER, rng, word_dropout=0.5, typo_rate=0.99)[0] for _ in range(40)]
    words = {w.lower() for w in DRYER.title.split()}
    assert any(not set(q.split()) <= words for q in queries)  # some typos
    assert all(q.strip() for q in queries)  # dropout never leaves an empty query


def _tiny_data(products):
    return self_supervised_data(
        products,
        fields=("title",),
        max_products=0,
        queries_per_product=2,
        word_dropout=0.1,
        typo_rate=0.05,
        seed=1,
        validation_products=5,
    )


def test_the_data_splits_products_and_reads_no_judgments():
    products = load_catalog(TINY_CATALOG).products
    data = _tiny_data(products)
    train_ids = {ex.product_id for ex in data.train}
    valid_positive = {ex.product_id for ex in data.validation if ex.relevance == 0}
    assert train_ids and valid_positive and not train_ids & valid_positive
    assert all(ex.relevance == 0 and ex.gain == 1.0 for ex in data.train)
    per_query = {}
    for ex in data.validation:
        per_query.setdefault(ex.query, []).append(ex.relevance)
    assert all(r.count(0) == 1 and r.count(IRRELEVANT) >= 1 for r in per_query.values())
    again = _tiny_data(products)
    assert again.train == data.train  # seeded


def test_self_supervision_is_for_the_bi_encoder():
    with pytest.raises(InvalidQueryError, match="bi-encoder"):
        TrainConfig.from_dict({"task": "cross-encoder", "self_supervised": {"enabled": True}})
    config = TrainConfig.load(CONFIG)
    assert config.self_supervised.enabled and config.task == "bi-encoder"


def test_the_train_command_adapts_a_bi_encoder_from_an_index_catalog(tiny_index_dir, tmp_path):
    """End to end through `shopsearch train` with a tiny model: pairs from the index's
    catalog, a run directory with the best model, and no judgments anywhere."""
    from tests_support import build_tiny_sentence_transformer

    from shopsearch.cli import main

    words = ["ugg", "slippers", "water", "bottle", "mug", "kit", "women", "men"]
    model = build_tiny_sentence_transformer(tmp_path / "tiny-st", words)
    out = tmp_path / "run"
    settings = {
        "base_model": str(model),
        "self_supervised.max_products": "40",
        "self_supervised.validation_products": "5",
        "data.max_length": "16",
        "train.batch_size": "8",
        "train.device": "cpu",
        "train.bf16": "off",
    }
    args = ["train", str(CONFIG), "--index", str(tiny_index_dir)]
    args += ["--out", str(out)]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    assert (out / "best").is_dir() and (out / "history.json").is_file()
