"""TrainConfig: defaults, TOML/JSON files, CLI overrides, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopsearch.errors import InvalidQueryError
from shopsearch.training.config import (
    DataConfig,
    LoopConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    parse_freeze,
)

SHIPPED = Path(__file__).resolve().parents[3] / "configs" / "cross_encoder_esci.toml"


def test_defaults_are_valid() -> None:
    config = TrainConfig()
    assert config.task == "cross-encoder"
    assert config.base_model == "minilm"
    assert config.data.product_fields == ("title", "brand", "color", "category")
    assert config.model.alpha == 0.3
    assert config.optim.optimizer == "adamw"
    assert config.train.early_stopping_mode == "max"
    assert config.lora.target_modules == ("query", "value")
    assert not config.lora.enabled


def test_shipped_config_loads() -> None:
    config = TrainConfig.load(SHIPPED)
    assert config.task == "cross-encoder"
    assert config.data.max_length == 96
    assert config.data.product_fields == ("title", "brand", "color", "category")
    assert config.train.epochs >= 1
    assert isinstance(config.data.product_fields, tuple)
    assert isinstance(config.optim.lr, float)


def test_overrides() -> None:
    config = TrainConfig().with_overrides(
        {
            "optim.lr": "1e-4",
            "lora.enabled": "true",
            "lora.target_modules": '["query","key"]',
            "train.freeze": "bottom:3",
            "seed": "7",
            "base_model": "runs/previous",
            "data.product_fields": "title,brand",
        }
    )
    assert config.optim.lr == pytest.approx(1e-4)
    assert config.lora.enabled is True
    assert config.lora.target_modules == ("query", "key")
    assert config.train.freeze == "bottom:3"
    assert parse_freeze(config.train.freeze) == ("bottom", 3)
    assert config.seed == 7
    assert config.base_model == "runs/previous"
    assert config.data.product_fields == ("title", "brand")
    assert TrainConfig().optim.lr == pytest.approx(3e-5)  # the original is unchanged


def test_numeric_text_for_a_string_field_stays_text() -> None:
    assert TrainConfig().with_overrides({"base_model": "2024"}).base_model == "2024"


def test_int_widens_to_float() -> None:
    config = TrainConfig().with_overrides({"optim.lr": "1"})
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)


@pytest.mark.parametrize("key", ["optim.lrr", "bogus", "nosection.lr", "data", "optim."])
def test_unknown_override_key(key: str) -> None:
    with pytest.raises(InvalidQueryError, match=key.rstrip(".").split(".")[-1]):
        TrainConfig().with_overrides({key: "1"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("optim.lr", "0"),
        ("optim.lr", "-1e-5"),
        ("optim.lr", "abc"),
        ("optim.head_lr", "0"),
        ("optim.optimizer", "adam"),
        ("optim.warmup_ratio", "1.5"),
        ("model.alpha", "1.1"),
        ("model.alpha", "-0.1"),
        ("model.score", "max"),
        ("model.relevance_classes", "3"),
        ("train.patience", "0"),
        ("train.batch_size", "0"),
        ("train.batch_size", "2.5"),
        ("train.freeze", "top:3"),
        ("train.freeze", "bottom:0"),
        ("train.freeze", "bottom:x"),
        ("train.bf16", "maybe"),
        ("train.device", "tpu"),
        ("train.early_stopping_metric", "ndcg"),
        ("data.validation_fraction", "1.0"),
        ("data.test_fraction", "0.9"),  # 0.15 + 0.9 >= 1
        ("data.folds", "1"),
        ("data.fold", "2"),  # folds = 0
        ("data.negatives_from", "random"),
        ("data.product_fields", '["title","price"]'),
        ("data.category_depth", "0"),
        ("lora.enabled", "yes"),
        ("lora.rank", "0"),
        ("lora.target_modules", "[]"),
        ("task", "classifier"),
        ("seed", "x"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(InvalidQueryError, match=key.split(".")[-1]):
        TrainConfig().with_overrides({key: value})


def test_fold_within_folds() -> None:
    config = TrainConfig().with_overrides({"data.folds": "5", "data.fold": "4"})
    assert (config.data.folds, config.data.fold) == (5, 4)
    with pytest.raises(InvalidQueryError, match="data.fold"):
        TrainConfig().with_overrides({"data.folds": "5", "data.fold": "5"})


def test_section_constructors_validate() -> None:
    with pytest.raises(InvalidQueryError, match="optim.lr"):
        OptimConfig(lr=-1.0)
    with pytest.raises(InvalidQueryError, match="model.alpha"):
        ModelConfig(alpha=2.0)
    with pytest.raises(InvalidQueryError, match="train.patience"):
        LoopConfig(patience=0)
    with pytest.raises(InvalidQueryError, match="lora.dropout"):
        LoraConfig(dropout=1.0)
    assert DataConfig(product_fields=["title"]).product_fields == ("title",)  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(InvalidQueryError, match="optim.learning_rate"):
        TrainConfig.from_dict({"optim": {"learning_rate": 1e-4}})
    with pytest.raises(InvalidQueryError, match="epochz"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(InvalidQueryError, match="data.cataloge"):
        DataConfig.from_dict({"cataloge": "x"})


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("none", ("none", 0)),
        ("embeddings", ("embeddings", 0)),
        ("all", ("all", 0)),
        ("bottom:3", ("bottom", 3)),
        ("all_but_top:2", ("all_but_top", 2)),
    ],
)
def test_parse_freeze(spec: str, parsed: tuple[str, int]) -> None:
    assert parse_freeze(spec) == parsed


@pytest.mark.parametrize("spec", ["", "bottom", "bottom:", "bottom:-1", "none:2", "top:1", "All"])
def test_parse_freeze_rejects(spec: str) -> None:
    with pytest.raises(InvalidQueryError, match="train.freeze"):
        parse_freeze(spec)


def test_early_stopping_mode() -> None:
    assert LoopConfig(early_stopping_metric="val_loss").early_stopping_mode == "min"
    assert LoopConfig(early_stopping_metric="val_category_accuracy").early_stopping_mode == "max"


def test_save_load_roundtrip(tmp_path: Path) -> None:
    config = TrainConfig.load(SHIPPED).with_overrides(
        {"lora.enabled": "true", "train.freeze": "all_but_top:2", "optim.lr": "5e-5"}
    )
    path = tmp_path / "train_config.json"
    config.save(path)
    assert json.loads(path.read_text())["format_version"] == 1
    assert TrainConfig.load(path) == config
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_toml_partial_file_keeps_defaults(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('task = "bi-encoder"\n[optim]\nlr = 2e-5\n', encoding="utf-8")
    config = TrainConfig.load(path)
    assert config.task == "bi-encoder"
    assert config.optim.lr == pytest.approx(2e-5)
    assert config.train == LoopConfig()


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("[train]\nepoch = 3\n", encoding="utf-8")
    with pytest.raises(InvalidQueryError, match=r"bad\.toml.*train\.epoch"):
        TrainConfig.load(bad_key)
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n", encoding="utf-8")
    with pytest.raises(InvalidQueryError, match="malformed"):
        TrainConfig.load(broken)
    with pytest.raises(InvalidQueryError, match=r"\.toml or \.json"):
        TrainConfig.load(tmp_path / "config.yaml")
    with pytest.raises(InvalidQueryError, match="cannot read"):
        TrainConfig.load(tmp_path / "absent.toml")


def test_every_shipped_config_loads():
    paths = sorted(SHIPPED.parent.glob("*.toml"))
    assert len(paths) >= 7
    for path in paths:
        config = TrainConfig.load(path)
        assert TrainConfig.from_dict(config.to_dict()) == config, path
