"""train_cross_encoder on a tiny randomly initialised BERT and a learnable toy task.

Toy task: products are "<color> <item>", queries are a color; a pair is Exact when the color
appears in the product text, else Irrelevant; the category is the item.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tests_support
import torch
from safetensors.torch import load_file

from shopsearch.errors import InvalidQueryError
from shopsearch.models.cross_encoder import CrossEncoderReranker
from shopsearch.training.config import TrainConfig
from shopsearch.training.data import PairExample
from shopsearch.training.metrics import ranking_ndcg
from shopsearch.training.pair_batches import plan_batches
from shopsearch.training.trainable import count_parameters, freeze_backbone, with_lora
from shopsearch.training.trainer import train_cross_encoder

COLORS = ["red", "blue", "green", "black", "white", "pink"]
ITEMS = ["shoe", "mug", "hat", "lamp"]
WORDS = [*COLORS, *ITEMS]
LABELS = tuple(ITEMS)


def build_tiny_bert(path: Path, layers: int = 4) -> Path:
    return tests_support.build_tiny_bert(path, list(WORDS), layers=layers)


def _pairs(queries: list[str]) -> list[PairExample]:
    pairs = []
    for query in queries:
        for color in COLORS:
            for item_id, item in enumerate(ITEMS):
                match = color == query
                if not match and (COLORS.index(color) + item_id) % 3:
                    continue  # keep the classes roughly balanced
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


def _category_only() -> list[PairExample]:
    return [
        PairExample("", f"{c}-{item}", f"{c} {item}", None, i, 0.0)
        for c in COLORS[:3]
        for i, item in enumerate(ITEMS)
    ]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def data() -> SimpleNamespace:
    return SimpleNamespace(
        train=_pairs(COLORS[:4]) + _category_only(),
        validation=_pairs(COLORS[4:]),
        vocab=SimpleNamespace(labels=LABELS),
        query_categories={},
    )


def make_config(tiny_bert: Path, **overrides: str) -> TrainConfig:
    settings = {
        "base_model": str(tiny_bert),
        "data.max_length": "16",
        "model.dropout": "0",
        "optim.lr": "2e-3",
        "optim.head_lr": "1e-2",
        "optim.warmup_ratio": "0",
        "train.batch_size": "8",
        "train.epochs": "2",
        "train.device": "cpu",
        "train.bf16": "off",
        "train.patience": "10",
    }
    return TrainConfig().with_overrides({**settings, **overrides})


def _fresh_model(tiny_bert: Path):
    return CrossEncoderReranker.from_pretrained(tiny_bert, 4, LABELS, device="cpu").model


# --------------------------------------------------------------------------- learning


def test_a_few_steps_make_the_loss_fall(tiny_bert, data, tmp_path):
    config = make_config(tiny_bert, **{"train.epochs": "4"})
    result = train_cross_encoder(config, data, tmp_path / "run")
    losses = [s["loss"] for s in result.history["steps"]]
    assert len(losses) == 4 * 7  # ceil((40 + 12) / 8) steps per epoch
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    for part in ("match", "cls", "lr", "head_lr"):
        assert part in result.history["steps"][0]
    assert [e["epoch"] for e in result.history["epochs"]] == [0, 1, 2, 3]
    evals = result.history["evals"]
    assert len(evals) == 4 and {"val_ndcg", "val_loss", "val_cls_loss"} <= set(evals[0])
    assert result.best_metric == max(e["val_ndcg"] for e in evals)
    assert not result.stopped_early and result.seconds > 0
    assert json.loads((tmp_path / "run" / "history.json").read_text())["steps"][0]["step"] == 1
    assert TrainConfig.load(tmp_path / "run" / "config.json") == config
    best = result.reranker
    assert best is not None
    scores = best.rank_scores("red", ["red hat", "blue hat"])
    np.testing.assert_array_equal(
        scores,
        CrossEncoderReranker.load(result.best_dir).rank_scores("red", ["red hat", "blue hat"]),
    )


def test_learning_rate_warms_up_then_decays(tiny_bert, data, tmp_path):
    config = make_config(tiny_bert, **{"train.max_steps": "10", "optim.warmup_ratio": "0.2"})
    result = train_cross_encoder(config, data, tmp_path / "run")
    lrs = [s["lr"] for s in result.history["steps"]]
    assert len(lrs) == 10 and lrs[0] == 0.0 and lrs[2] == pytest.approx(2e-3)
    assert lrs[2] > lrs[5] > lrs[9] > 0
    assert result.history["steps"][2]["head_lr"] == pytest.approx(1e-2)


def test_gradient_accumulation_takes_fewer_optimizer_steps(tiny_bert, data, tmp_path):
    config = make_config(tiny_bert, **{"train.grad_accumulation": "3", "train.epochs": "1"})
    result = train_cross_encoder(config, data, tmp_path / "run")
    assert len(result.history["steps"]) == 3  # 7 batches in groups of 3


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_when_the_metric_cannot_improve(tiny_bert, data, tmp_path):
    calls = []

    def constant(reranker):
        calls.append(1)
        return {"val_custom": 0.5}

    config = make_config(
        tiny_bert,
        **{"train.epochs": "6", "train.patience": "2", "train.early_stopping_metric": "val_custom"},
    )
    result = train_cross_encoder(config, data, tmp_path / "run", evaluate=constant)
    assert result.stopped_early
    assert len(calls) == 3 == len(result.history["evals"])  # best, then 2 without improvement
    assert result.best_step == 7 and result.best_metric == 0.5
    assert len(result.history["steps"]) == 3 * 7  # stopped after epoch 3 of 6


def test_loss_metrics_are_minimised(tiny_bert, data, tmp_path):
    config = make_config(
        tiny_bert, **{"train.epochs": "3", "train.early_stopping_metric": "val_loss"}
    )
    result = train_cross_encoder(config, data, tmp_path / "run")
    assert result.best_metric == min(e["val_loss"] for e in result.history["evals"])


def test_an_unknown_early_stopping_metric_is_an_error(tiny_bert, data, tmp_path):
    config = make_config(tiny_bert, **{"train.early_stopping_metric": "val_nope"})
    with pytest.raises(InvalidQueryError, match="val_nope"):
        train_cross_encoder(config, data, tmp_path / "run")


# --------------------------------------------------------------------------- freezing


def _frozen_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def _backbone_names(model, *prefixes: str) -> set[str]:
    return {n for n, _ in model.named_parameters() if any(n.startswith(p) for p in prefixes)}


POOLER = ("backbone.pooler.",)
EMB = ("backbone.embeddings.",)


def _layers(*ids: int) -> tuple[str, ...]:
    return tuple(f"backbone.encoder.layer.{i}." for i in ids)


@pytest.mark.parametrize(
    ("spec", "frozen_prefixes"),
    [
        ("none", POOLER),
        ("embeddings", POOLER + EMB),
        ("bottom:2", POOLER + EMB + _layers(0, 1)),
        ("all_but_top:1", POOLER + EMB + _layers(0, 1, 2)),
        ("all", ("backbone.",)),
    ],
)
def test_freezing_freezes_exactly_what_it_says(tiny_bert, spec, frozen_prefixes):
    model = _fresh_model(tiny_bert)
    freeze_backbone(model.backbone, spec)
    assert _frozen_names(model) == _backbone_names(model, *frozen_prefixes)
    assert not any(n.startswith(("relevance_head", "category_head")) for n in _frozen_names(model))
    trainable, total = count_parameters(model)
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total == sum(p.numel() for p in model.parameters())


def test_freezing_more_layers_than_the_backbone_has_is_an_error(tiny_bert):
    with pytest.raises(InvalidQueryError):
        freeze_backbone(_fresh_model(tiny_bert).backbone, "bottom:5")


def _saved_backbone(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "best" / "model" / "model.safetensors"))


def test_frozen_weights_are_unchanged_after_training(tiny_bert, data, tmp_path):
    config = make_config(tiny_bert, **{"train.freeze": "bottom:2", "train.epochs": "1"})
    result = train_cross_encoder(config, data, tmp_path / "run")
    before = load_file(str(tiny_bert / "model.safetensors"))
    after = _saved_backbone(tmp_path / "run")
    for name, value in before.items():
        frozen = name.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1.", "pooler"))
        assert torch.equal(value, after[name]) == frozen, name
    model = _fresh_model(tiny_bert)
    freeze_backbone(model.backbone, "bottom:2")
    assert (result.trainable_params, result.total_params) == count_parameters(model)
    assert result.history["trainable_params"] == result.trainable_params


# --------------------------------------------------------------------------- LoRA


def test_lora_makes_only_adapters_and_heads_trainable(tiny_bert):
    config = make_config(tiny_bert, **{"lora.enabled": "true", "lora.rank": "2"})
    model = _fresh_model(tiny_bert)
    model.backbone = with_lora(model.backbone, config.lora)
    freeze_backbone(model.backbone, "none")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    for name in trainable:
        assert "lora_" in name or name.startswith(("relevance_head.", "category_head.")), name
    assert any(".query.lora_A" in n for n in trainable)
    assert any(".value.lora_B" in n for n in trainable)
    assert not any(".key." in n for n in trainable)


def test_lora_trains_adapters_and_saves_a_merged_model(tiny_bert, data, tmp_path, monkeypatch):
    config = make_config(
        tiny_bert, **{"lora.enabled": "true", "lora.rank": "2", "train.epochs": "2"}
    )
    texts = ["red hat", "blue mug", "pink lamp", "white shoe"]
    live_scores = []

    def record(reranker):  # scores of the live peft model at each evaluation
        live_scores.append(reranker.rank_scores("red", texts))
        return {}

    result = train_cross_encoder(config, data, tmp_path / "run", evaluate=record)
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=False)["model"]
    base = load_file(str(tiny_bert / "model.safetensors"))
    lora_b = [k for k in state if "lora_B" in k]
    assert lora_b and all(state[k].abs().sum() > 0 for k in lora_b)  # initialised at zero
    for key, value in state.items():
        if key.startswith("backbone.") and "lora_" not in key:
            name = key.removeprefix("backbone.base_model.model.").replace(".base_layer", "")
            assert torch.equal(value, base[name]), key  # base weights untouched
    assert result.trainable_params < result.total_params / 5

    merged = _saved_backbone(tmp_path / "run")
    assert not any("lora" in k for k in merged)
    assert not (tmp_path / "run" / "best" / "model" / "adapter_config.json").exists()
    assert not torch.equal(merged["encoder.layer.0.attention.self.query.weight"],
                           base["encoder.layer.0.attention.self.query.weight"])  # fmt: skip
    assert torch.equal(merged["encoder.layer.0.attention.self.key.weight"],
                       base["encoder.layer.0.attention.self.key.weight"])  # fmt: skip

    monkeypatch.setitem(sys.modules, "peft", None)  # loading must not need peft
    loaded = CrossEncoderReranker.load(tmp_path / "run" / "best", device="cpu")
    best_eval = [e["step"] for e in result.history["evals"]].index(result.best_step)
    np.testing.assert_allclose(
        loaded.rank_scores("red", texts), live_scores[best_eval], rtol=1e-4, atol=1e-6
    )


# --------------------------------------------------------------------------- resume


class _Interrupted(Exception):
    pass


def test_resume_continues_from_the_saved_step(tiny_bert, data, tmp_path):
    config = make_config(tiny_bert, **{"train.eval_every": "3", "train.max_steps": "9"})
    full = train_cross_encoder(config, data, tmp_path / "full")

    calls = []

    def crash_at_second_evaluation(reranker):  # at step 6, before its checkpoint
        calls.append(1)
        if len(calls) == 2:
            raise _Interrupted
        return {}

    with pytest.raises(_Interrupted):
        train_cross_encoder(config, data, tmp_path / "cut", evaluate=crash_at_second_evaluation)
    saved = torch.load(tmp_path / "cut" / "checkpoint" / "state.pt", weights_only=False)
    assert saved["loop"]["step"] == 3

    steps_seen = []

    @contextmanager
    def stage(description, total):
        steps_seen.append(("start", total))
        yield lambda n=1: steps_seen.append(n)

    resumed = train_cross_encoder(
        config, data, tmp_path / "cut", resume=True, progress=SimpleNamespace(stage=stage)
    )
    assert steps_seen[:2] == [("start", 9), 3]  # the bar starts at the saved step
    assert [s["step"] for s in resumed.history["steps"]] == list(range(1, 10))
    got = [s["loss"] for s in resumed.history["steps"]]
    want = [s["loss"] for s in full.history["steps"]]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert [e["step"] for e in resumed.history["evals"]] == [3, 6, 9]
    np.testing.assert_array_equal(
        resumed.reranker.rank_scores("red", ["red hat", "blue mug"]),
        full.reranker.rank_scores("red", ["red hat", "blue mug"]),
    )


# --------------------------------------------------------------------------- helpers


def test_batches_are_reproducible_and_cover_every_example(data):
    batches = plan_batches(data.train, 8, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(data.train)))
    assert batches == plan_batches(data.train, 8, seed=1, epoch=0)
    assert batches != plan_batches(data.train, 8, seed=1, epoch=1)


def test_ranking_ndcg_by_query():
    examples = [
        PairExample("q", "a", "", 0, None, 1.0),
        PairExample("q", "b", "", 1, None, 0.1),
        PairExample("r", "c", "", 0, None, 1.0),
        PairExample("", "d", "", None, 0, 0.0),  # category-only: not ranked
    ]
    got = ranking_ndcg(examples, [0.1, 0.9, 0.5, 0.0])
    q = (0.1 + 1.0 / np.log2(3)) / (1.0 + 0.1 / np.log2(3))
    assert got == pytest.approx((q + 1.0) / 2)


# --------------------------------------------------------------------------- ranking objective


def test_batches_by_query_hold_one_query_each(data):
    batches = plan_batches(data.train, 8, seed=1, epoch=0, by_query=True)
    assert sorted(i for b in batches for i in b) == list(range(len(data.train)))
    for batch in batches:
        assert len({data.train[i].query for i in batch}) == 1
        assert len(batch) <= 8
    assert batches == plan_batches(data.train, 8, seed=1, epoch=0, by_query=True)
    assert batches != plan_batches(data.train, 8, seed=1, epoch=1, by_query=True)


def test_the_rank_loss_trains_and_falls(tiny_bert, data, tmp_path):
    config = make_config(
        tiny_bert, **{"train.epochs": "4", "model.rank_loss_weight": "1.0", "model.alpha": "0"}
    )
    result = train_cross_encoder(config, data, tmp_path / "run")
    ranks = [s["rank"] for s in result.history["steps"]]
    assert all(r > 0 for r in ranks[:3])
    assert np.mean(ranks[-5:]) < 0.7 * np.mean(ranks[:5])
    # 4 queries x 10 pairs in batches of 8 -> 2 batches each; 12 category rows -> 2 batches
    assert len(ranks) == 4 * (4 * 2 + 2)


def _with_priors(examples, prior):
    return [replace(ex, prior=prior(ex)) if ex.query else ex for ex in examples]


def test_validation_ranks_by_relevance_plus_weighted_prior(tiny_bert, data, tmp_path):
    # An inverted prior: a huge weight makes it decide the ranking, so val nDCG is low.
    inverted = SimpleNamespace(
        train=data.train,
        validation=_with_priors(data.validation, lambda ex: -3.0 * ex.gain),
        vocab=data.vocab,
        query_categories={},
    )
    config = make_config(tiny_bert, **{"train.max_steps": "1", "model.prior_weight": "100"})
    result = train_cross_encoder(config, inverted, tmp_path / "run")
    worst = ranking_ndcg(inverted.validation, [-ex.gain for ex in inverted.validation])
    assert result.history["evals"][0]["val_ndcg"] == pytest.approx(worst)
    assert result.reranker.config.prior_weight == 100.0
    reloaded = CrossEncoderReranker.load(result.best_dir)
    assert reloaded.prior_weight == 100.0
    good, bad = reloaded.rank_scores("red", ["red hat", "blue hat"], priors=[0.0, 1.0])
    assert bad > good  # the prior outweighs the relevance head


# --------------------------------------------------------------------------- smaller students


def test_model_layers_keeps_the_lowest_layers_and_saves_a_smaller_model(tiny_bert, data, tmp_path):
    config = make_config(tiny_bert, **{"train.max_steps": "2", "model.layers": "2"})
    result = train_cross_encoder(config, data, tmp_path / "run")
    saved = json.loads((result.best_dir / "model" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 2
    reloaded = CrossEncoderReranker.load(result.best_dir)
    assert len(reloaded.model.backbone.encoder.layer) == 2
    assert count_parameters(reloaded.model)[1] < count_parameters(_fresh_model(tiny_bert))[1]
    # the kept layers started from the base model's lowest ones (frozen here to compare)
    frozen = make_config(
        tiny_bert, **{"train.max_steps": "1", "model.layers": "2", "train.freeze": "all"}
    )
    run = train_cross_encoder(frozen, data, tmp_path / "frozen").run_dir
    cut, base = _saved_backbone(run), load_file(str(tiny_bert / "model.safetensors"))
    kept = {int(n.split("encoder.layer.")[1].split(".")[0]) for n in cut if "encoder.layer." in n}
    assert kept == {0, 1}
    for name, value in cut.items():
        assert torch.equal(value, base[name]), name


def test_more_layers_than_the_base_has_is_an_error(tiny_bert, data, tmp_path):
    with pytest.raises(InvalidQueryError, match="only 4 layers"):
        train_cross_encoder(make_config(tiny_bert, **{"model.layers": "5"}), data, tmp_path / "r")


def test_distillation_needs_a_teacher_and_the_cross_encoder():
    with pytest.raises(InvalidQueryError, match="needs model.teacher"):
        TrainConfig().with_overrides({"model.distill_weight": "1"})
    with pytest.raises(InvalidQueryError, match="apply to the cross-encoder"):
        TrainConfig().with_overrides({"task": "bi-encoder", "model.layers": "3"})


def test_a_student_distilled_from_a_teacher_learns_to_agree_with_it(tiny_bert, data, tmp_path):
    teacher = train_cross_encoder(
        make_config(tiny_bert, **{"train.epochs": "4"}), data, tmp_path / "teacher"
    )
    # A 2-layer student cut from the teacher, trained on the labels plus the teacher's
    # soft classes; judged by agreement with the teacher on every (colour, item) text.
    settings = {
        "base_model": str(teacher.run_dir),
        "model.layers": "2",
        "model.teacher": str(teacher.run_dir),
        "model.distill_weight": "4",
        "train.epochs": "4",
    }
    student = train_cross_encoder(make_config(tiny_bert, **settings), data, tmp_path / "student")
    distills = [s["distill"] for s in student.history["steps"]]
    assert all(d >= 0 for d in distills) and distills[0] > 0
    assert np.mean(distills[-5:]) < np.mean(distills[:5])
    texts = [f"{c} {item}" for c in COLORS for item in ITEMS]
    want = teacher.reranker.rank_scores("pink", texts)
    got = student.reranker.rank_scores("pink", texts)
    assert np.corrcoef(want, got)[0, 1] > 0.8


def test_a_teacher_must_be_a_cross_encoder_run_with_the_same_tokenizer(tiny_bert, data, tmp_path):
    settings = {"model.teacher": str(tiny_bert), "model.distill_weight": "1"}
    with pytest.raises(InvalidQueryError, match="not a cross-encoder run"):
        train_cross_encoder(make_config(tiny_bert, **settings), data, tmp_path / "a")
    other = tests_support.build_tiny_bert(tmp_path / "other-bert", ["x", "y"], layers=2)
    teacher = train_cross_encoder(
        make_config(other, **{"train.max_steps": "1"}), data, tmp_path / "teacher"
    )
    settings["model.teacher"] = str(teacher.run_dir)
    with pytest.raises(InvalidQueryError, match="tokenizer differs"):
        train_cross_encoder(make_config(tiny_bert, **settings), data, tmp_path / "b")
