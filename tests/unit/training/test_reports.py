"""Training reports: per-class metrics vs hand-computed values, evaluation with a fake
reranker at the model seam, the learning-curve PNG and the run report files."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from shopsearch.training.config import TrainConfig
from shopsearch.training.data import PairExample
from shopsearch.training.reports import (
    ModelEvaluation,
    before_after_table,
    classification_report,
    evaluate_reranker,
    plot_learning_curves,
    write_run_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- classification_report


def test_classification_report_matches_hand_computed_values() -> None:
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    report = classification_report(y_true, y_pred, ["a", "b", "c"])
    a, b, c = (report["classes"][k] for k in "abc")
    # a: tp 2, predicted 2, support 3 -> P 2/2 = 1, R 2/3, F1 2*1*(2/3)/(1+2/3) = 0.8
    assert a["precision"] == pytest.approx(1.0)
    assert a["recall"] == pytest.approx(2 / 3)
    assert a["f1"] == pytest.approx(0.8)
    assert a["support"] == 3
    # b: tp 1 (row 3), predicted 2 (rows 2, 3), support 2 -> P 1/2, R 1/2, F1 0.5
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((0.5, 0.5, 0.5, 2))
    # c: tp 1 (row 5), predicted 2 (rows 4, 5), support 1 -> P 1/2, R 1, F1 2*0.5/1.5 = 2/3
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx(
        (0.5, 1.0, 2 / 3, 1)
    )
    # micro: 4 correct of 6 decisions -> P = R = F1 = accuracy = 2/3
    for metric in ("precision", "recall", "f1"):
        assert report["micro"][metric] == pytest.approx(4 / 6)
    # macro: P (1 + .5 + .5)/3 = 2/3, R (2/3 + .5 + 1)/3 = 13/18, F1 (.8 + .5 + 2/3)/3 = 59/90
    assert report["macro"]["precision"] == pytest.approx(2 / 3)
    assert report["macro"]["recall"] == pytest.approx(13 / 18)
    assert report["macro"]["f1"] == pytest.approx(59 / 90)
    # weighted (3, 2, 1)/6: P (3*1 + 2*.5 + 1*.5)/6 = 0.75, R (2 + 1 + 1)/6 = 2/3,
    # F1 (3*.8 + 2*.5 + 1*2/3)/6 = 61/90
    assert report["weighted"]["precision"] == pytest.approx(0.75)
    assert report["weighted"]["recall"] == pytest.approx(2 / 3)
    assert report["weighted"]["f1"] == pytest.approx(61 / 90)
    assert report["micro"]["support"] == report["macro"]["support"] == 6


def test_micro_f1_equals_accuracy_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 5, size=200))
    report = classification_report(y_true.tolist(), y_pred.tolist(), list("vwxyz"))
    accuracy = float(np.mean(y_true == y_pred))
    assert report["micro"]["f1"] == pytest.approx(accuracy)
    assert report["weighted"]["recall"] == pytest.approx(accuracy)  # always, single-label


def test_classes_without_support_or_predictions_are_omitted() -> None:
    # "d" never occurs: left out (also of the macro mean). "c" is only predicted: kept, all 0.
    report = classification_report([0, 1, 1], [0, 1, 2], ["a", "b", "c", "d"])
    assert sorted(report["classes"]) == ["a", "b", "c"]
    assert report["classes"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro F1 over a, b, c: (1 + 2/3 + 0)/3 (b: P 1, R 1/2 -> F1 2/3)
    assert report["macro"]["f1"] == pytest.approx((1 + 2 / 3) / 3)


def test_classification_report_edge_cases() -> None:
    empty = classification_report([], [], ["a"])
    assert empty["classes"] == {} and empty["micro"]["f1"] == 0.0 and empty["macro"]["f1"] == 0.0
    with pytest.raises(ValueError, match="outside"):
        classification_report([0, 3], [0, 0], ["a", "b"])
    with pytest.raises(ValueError, match="predictions"):
        classification_report([0, 1], [0], ["a", "b"])


# --------------------------------------------------------------------------- evaluate_reranker


class FakeReranker:
    """Deterministic outputs read from dicts: the seam evaluate_reranker calls."""

    category_labels = ("other", "shoes", "mugs")

    def __init__(
        self,
        scores: Mapping[tuple[str, str], float],
        classes: Mapping[tuple[str, str], int],
        categories: Mapping[str, int],
    ) -> None:
        self.scores, self.classes, self.categories = scores, classes, categories
        self.classified_queries: list[str] = []
        self.priors_seen: list[list[float] | None] = []

    def rank_scores(
        self, query: str, texts: Sequence[str], priors: Sequence[float] | None = None
    ) -> np.ndarray:
        self.priors_seen.append(None if priors is None else list(priors))
        return np.array([self.scores[(query, t)] for t in texts], dtype=np.float32)

    def relevance_probabilities(self, query: str, texts: Sequence[str]) -> np.ndarray:
        probs = np.full((len(texts), 4), 0.1)
        for row, text in enumerate(texts):
            probs[row, self.classes[(query, text)]] = 0.7
        return probs

    def _one_hot(self, texts: Sequence[str]) -> np.ndarray:
        probs = np.zeros((len(texts), len(self.category_labels)))
        probs[np.arange(len(texts)), [self.categories[t] for t in texts]] = 1.0
        return probs

    def classify_queries(self, queries: Sequence[str]) -> np.ndarray:
        self.classified_queries.extend(queries)
        return self._one_hot(queries)

    def classify_products(self, texts: Sequence[str]) -> np.ndarray:
        return self._one_hot(texts)


def pair(query: str, pid: str, relevance: int | None, gain: float) -> PairExample:
    return PairExample(query, pid, f"text {pid}", relevance, category=None, gain=gain)


EXAMPLES = [
    pair("q1", "p1", 0, 1.0),  # E
    pair("q1", "p2", 1, 0.1),  # S
    pair("q1", "p3", 3, 0.0),  # I
    pair("q2", "p4", 0, 1.0),  # E
    pair("q2", "p5", 3, 0.0),  # I
    pair("", "p6", None, 0.0),  # product-only (category task): skipped
]


def fake_model() -> FakeReranker:
    return FakeReranker(
        scores={
            ("q1", "text p1"): 0.2,
            ("q1", "text p2"): 0.9,
            ("q1", "text p3"): 0.1,
            ("q2", "text p4"): 0.8,
            ("q2", "text p5"): 0.3,
        },
        classes={
            ("q1", "text p1"): 0,  # E, right
            ("q1", "text p2"): 0,  # E for S, wrong
            ("q1", "text p3"): 3,  # I, right
            ("q2", "text p4"): 0,  # E, right
            ("q2", "text p5"): 2,  # C for I, wrong
        },
        categories={
            "title p1": 1,  # right (shoes)
            "title p2": 2,  # wrong (mugs for shoes)
            "title p3": 2,  # right
            "title p4": 2,  # right
            "q1": 1,  # right
            "q2": 1,  # wrong (shoes for mugs)
            "q_train": 1,
        },
    )


def test_evaluate_reranker_hand_checked() -> None:
    model = fake_model()
    evaluation = evaluate_reranker(
        model,
        EXAMPLES,
        name="fake",
        query_categories={"q1": 1, "q2": 2, "q_train": 1},
        product_categories={"p1": 1, "p2": 1, "p3": 2, "p4": 2, "p9": 1},  # p9: no text
        product_texts_for_category={f"p{i}": f"title p{i}" for i in range(1, 5)},
    )
    # q1 ranked p2, p1, p3: DCG 0.1 + 1/log2(3); ideal 1 + 0.1/log2(3). q2 ranked right: 1.
    q1 = (0.1 + 1 / math.log2(3)) / (1 + 0.1 / math.log2(3))
    assert q1 == pytest.approx(0.68755, abs=1e-5)
    assert evaluation.rerank_ndcg == pytest.approx((q1 + 1.0) / 2)
    assert evaluation.queries == 2
    # ESCI: 3 of 5 pairs right (p1, p3, p4).
    assert evaluation.esci_micro_f1 == pytest.approx(3 / 5)
    classes = evaluation.esci_report["classes"]
    assert sorted(classes) == ["C", "E", "I", "S"]
    # E: predicted for p1, p2, p4 (2 right), support 2 (p1, p4) -> P 2/3, R 1
    assert (classes["E"]["precision"], classes["E"]["recall"]) == pytest.approx((2 / 3, 1.0))
    # product categories: p1, p3, p4 right of p1..p4 (p9 has no text) -> 3/4
    assert evaluation.category_accuracy == pytest.approx(0.75)
    assert evaluation.category_report is not None
    assert evaluation.category_report["micro"]["support"] == 4
    assert set(evaluation.category_report["classes"]) == {"shoes", "mugs"}
    # query categories: q1 right, q2 wrong; q_train is not among the examples' queries.
    assert evaluation.query_category_accuracy == pytest.approx(0.5)
    assert sorted(model.classified_queries) == ["q1", "q2"]


def test_evaluate_reranker_without_category_inputs() -> None:
    evaluation = evaluate_reranker(fake_model(), EXAMPLES, name="fake")
    assert evaluation.category_accuracy is None
    assert evaluation.category_report is None
    assert evaluation.query_category_accuracy is None


# --------------------------------------------------------------------------- plots and reports


def synthetic_history(n_steps: int = 60, steps_per_epoch: int = 20) -> dict:
    """Shaped like trainer.py's history.json (steps, epochs, evals, best_*)."""
    rng = np.random.default_rng(1)
    steps = []
    for step in range(1, n_steps + 1):
        match = 1.4 * math.exp(-step / 25) + 0.3 + 0.1 * rng.random()
        cls = 2.0 * math.exp(-step / 15) + 0.2 + 0.1 * rng.random()
        steps.append(
            {
                "step": step,
                "epoch": (step - 1) // steps_per_epoch,
                "loss": 0.3 * cls + 0.7 * match,
                "match": match,
                "cls": cls,
                "lr": 3e-5,
                "head_lr": 1e-3,
            }
        )
    evals = [
        {
            "step": step,
            "epoch": step // steps_per_epoch - 1,
            "val_loss": 1.0 - 0.1 * i,
            "val_match_loss": 0.9 - 0.1 * i,
            "val_cls_loss": 1.3 - 0.2 * i,
            "val_ndcg": [0.70, 0.82, 0.80][i],
            "val_cls_acc": 0.5 + 0.1 * i,
            "val_query_acc": 0.4 + 0.1 * i,
        }
        for i, step in enumerate(range(steps_per_epoch, n_steps + 1, steps_per_epoch))
    ]
    return {
        "trainable_params": 1000,
        "total_params": 4000,
        "plan": {"steps_per_epoch": steps_per_epoch, "total_steps": n_steps},
        "device": "cpu",
        "base_model": "tiny",
        "best_metric": 0.82,
        "best_step": 2 * steps_per_epoch,
        "stopped_early": False,
        "steps": steps,
        "epochs": [],
        "evals": evals,
    }


def test_plot_learning_curves_writes_png(tmp_path: Path) -> None:
    path = plot_learning_curves(synthetic_history(), tmp_path / "sub" / "curves.png")
    assert path == tmp_path / "sub" / "curves.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_learning_curves_empty_history(tmp_path: Path) -> None:
    path = plot_learning_curves({"steps": [], "evals": []}, tmp_path / "empty.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def evaluation(name: str, ndcg: float, accuracy: float | None) -> ModelEvaluation:
    esci = classification_report([0, 0, 3, 3], [0, 3, 3, 3], ["E", "S", "C", "I"])
    cats = classification_report([1, 1, 2], [1, 2, 2], ["other", "shoes", "mugs"])
    return ModelEvaluation(
        name=name,
        rerank_ndcg=ndcg,
        esci_micro_f1=0.75,
        category_accuracy=accuracy,
        query_category_accuracy=None,
        esci_report=esci,
        category_report=cats if accuracy is not None else None,
        queries=7,
    )


def test_before_after_table_deltas() -> None:
    rows = {
        r["key"]: r
        for r in before_after_table(
            evaluation("zero-shot", 0.5, None), evaluation("fine-tuned", 0.8, 2 / 3)
        )
    }
    assert rows["rerank_ndcg"]["zero-shot"] == 0.5
    assert rows["rerank_ndcg"]["fine-tuned"] == 0.8
    assert rows["rerank_ndcg"]["delta"] == pytest.approx(0.3)
    assert rows["esci_micro_f1"]["delta"] == pytest.approx(0.0)
    assert rows["category_accuracy"]["delta"] is None  # missing before
    assert rows["query_category_accuracy"]["fine-tuned"] is None


def test_write_run_report_writes_all_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    TrainConfig().save(run_dir / "config.json")
    history = synthetic_history()
    before = evaluation("zero-shot", 0.5, 0.25)
    after = evaluation("fine-tuned", 0.8, 2 / 3)
    report = write_run_report(
        run_dir, history=history, before=before, after=after, extra={"seconds": 12.5}
    )

    assert (run_dir / "learning_curves.png").read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved == report
    assert saved["after"]["esci_report"]["classes"]["E"]["support"] == 2
    assert saved["training"]["best_metric_name"] == "val_ndcg"
    assert saved["training"]["trainable_params"] == 1000
    assert saved["training"]["seconds"] == 12.5
    assert saved["config"]["task"] == "cross-encoder"

    markdown = (run_dir / "report.md").read_text()
    assert "| metric | zero-shot | fine-tuned | delta |" in markdown
    assert "| nDCG (rerank, whole list) | 0.5000 | 0.8000 | +0.3000 |" in markdown
    assert "1,000 of 4,000 (25.0%)" in markdown
    assert "12.5 s" in markdown
    assert "| E | 1.000 | 0.500 | 0.667 | 2 |" in markdown  # ESCI per class, fine-tuned
    assert "| shoes |" in markdown  # top categories
    assert "](learning_curves.png)" in markdown
