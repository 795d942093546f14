"""MultiTaskCrossEncoder, its loss and the CrossEncoderReranker wrapper, on a tiny BERT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tests_support
import torch
from torch.nn import functional as F

from shopsearch.errors import InvalidQueryError, ModelLoadError
from shopsearch.models.cross_encoder import (
    ESCI_CLASS_GAINS,
    IGNORE_INDEX,
    CrossEncoderReranker,
    encode_inputs,
    expected_gain,
    multitask_loss,
)

WORDS = "red blue green black shoe mug hat lamp running ceramic wool desk".split()
LABELS = ("footwear", "kitchen", "apparel", "home")


def build_tiny_bert(path: Path, layers: int = 4) -> Path:
    return tests_support.build_tiny_bert(path, list(WORDS), layers=layers)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def reranker(tiny_bert) -> CrossEncoderReranker:
    rr = CrossEncoderReranker.from_pretrained(
        tiny_bert, num_categories=len(LABELS), category_labels=LABELS, seed=3, device="cpu"
    )
    rr.config = type(rr.config)(**{**rr.config.to_dict(), "batch_size": 2})  # several batches
    return rr


TEXTS = ["red running shoe", "blue mug", "green wool hat desk lamp", "black desk lamp", "mug"]


def test_expected_gain_is_sum_of_probabilities_times_gains():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(axis=1, keepdims=True)
    want = p @ np.array([1.0, 0.1, 0.01, 0.0])
    np.testing.assert_allclose(expected_gain(logits, ESCI_CLASS_GAINS).numpy(), want, rtol=1e-6)


def test_rank_scores_are_expected_gains_of_the_model_outputs(reranker):
    batch = encode_inputs(reranker.tokenizer, ["red shoe"] * len(TEXTS), TEXTS, 128)
    reranker.model.eval()
    with torch.no_grad():
        logits = reranker.model(**batch)["relevance_logits"]
    p = torch.softmax(logits, dim=-1).numpy()
    want = (p * np.array([1.0, 0.1, 0.01, 0.0])).sum(axis=1)
    np.testing.assert_allclose(reranker.rank_scores("red shoe", TEXTS), want, rtol=1e-5)


def test_rank_scores_do_not_depend_on_order_or_batching(reranker):
    scores = reranker.rank_scores("blue hat", TEXTS)
    reversed_scores = reranker.rank_scores("blue hat", TEXTS[::-1])
    np.testing.assert_allclose(reversed_scores[::-1], scores, rtol=1e-5, atol=1e-7)
    assert scores.dtype == np.float32 and scores.shape == (len(TEXTS),)
    assert reranker.rank_scores("q", []).shape == (0,)


def test_padding_does_not_change_the_pooled_output(reranker):
    model = reranker.model.eval()
    short = encode_inputs(reranker.tokenizer, ["red"], ["mug"], 128)
    padded = encode_inputs(reranker.tokenizer, ["red", "red"], ["mug", "blue wool desk lamp"], 128)
    with torch.no_grad():
        alone = model(**short)["relevance_logits"][0]
        in_batch = model(**padded)["relevance_logits"][0]
    torch.testing.assert_close(alone, in_batch, rtol=1e-5, atol=1e-6)


def test_single_sequences_and_pairs_are_encoded_as_such(reranker):
    batch = encode_inputs(reranker.tokenizer, ["red", ""], ["mug", "blue hat"], 128)
    cls, sep = reranker.tokenizer.cls_token_id, reranker.tokenizer.sep_token_id
    ids = batch["input_ids"].tolist()
    vocab = reranker.tokenizer.get_vocab()
    assert ids[0] == [cls, vocab["red"], sep, vocab["mug"], sep]
    assert ids[1] == [cls, vocab["blue"], vocab["hat"], sep, 0]  # padded with [PAD]
    assert batch["token_type_ids"].tolist()[0] == [0, 0, 0, 1, 1]
    assert batch["attention_mask"].tolist()[1] == [1, 1, 1, 1, 0]


def test_classify_queries_and_products_give_probabilities(reranker):
    probs = reranker.classify_queries(["red shoe", "mug", "lamp"])
    assert probs.shape == (3, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(reranker.classify_products(["mug"])[0], probs[1], rtol=1e-5)


def test_heads_are_initialised_from_the_seed(tiny_bert):
    def heads(seed):
        rr = CrossEncoderReranker.from_pretrained(tiny_bert, 4, LABELS, seed=seed, device="cpu")
        return rr.model.relevance_head.weight.detach().clone()

    torch.testing.assert_close(heads(5), heads(5))
    assert not torch.equal(heads(5), heads(6))


def test_save_and_load_restore_identical_scores(reranker, tmp_path):
    with torch.no_grad():  # move the heads away from their seeded init
        reranker.model.relevance_head.bias.copy_(torch.tensor([0.5, -0.2, 0.1, 0.3]))
    before = reranker.rank_scores("red shoe", TEXTS)
    queries_before = reranker.classify_queries(["red shoe", "mug"])
    reranker.save(tmp_path / "ce")
    saved = json.loads((tmp_path / "ce" / "reranker.json").read_text())
    assert saved["category_labels"] == list(LABELS) and saved["num_categories"] == 4
    assert saved["max_length"] == 128
    loaded = CrossEncoderReranker.load(tmp_path / "ce", device="cpu")
    np.testing.assert_array_equal(loaded.rank_scores("red shoe", TEXTS), before)
    np.testing.assert_array_equal(loaded.classify_queries(["red shoe", "mug"]), queries_before)
    assert loaded.category_labels == LABELS


def test_load_of_a_missing_directory_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError):
        CrossEncoderReranker.load(tmp_path / "nothing")


# --------------------------------------------------------------------------- loss


def _outputs(seed: int = 0, n: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "relevance_logits": torch.randn(n, 4, generator=g, requires_grad=True),
        "category_logits": torch.randn(n, 3, generator=g, requires_grad=True),
    }


def test_loss_matches_a_hand_computed_cross_entropy():
    out = _outputs()
    relevance = torch.tensor([0, IGNORE_INDEX, 3, 1, IGNORE_INDEX])
    category = torch.tensor([2, 1, IGNORE_INDEX, IGNORE_INDEX, 0])
    total, parts = multitask_loss(out, relevance, category, alpha=0.3)
    match = F.cross_entropy(out["relevance_logits"][[0, 2, 3]], torch.tensor([0, 3, 1]))
    cls = F.cross_entropy(out["category_logits"][[0, 1, 4]], torch.tensor([2, 1, 0]))
    torch.testing.assert_close(parts["match"], match.detach())
    torch.testing.assert_close(parts["cls"], cls.detach())
    torch.testing.assert_close(total, 0.3 * cls + 0.7 * match)


def test_alpha_zero_needs_no_category_and_alpha_one_no_relevance():
    out = _outputs()
    relevance = torch.tensor([0, 1, 2, 3, 0])
    total, parts = multitask_loss(out, relevance, None, alpha=0.0)
    torch.testing.assert_close(total, F.cross_entropy(out["relevance_logits"], relevance))
    assert float(parts["cls"]) == 0.0
    total.backward()
    assert out["category_logits"].grad is None or not out["category_logits"].grad.any()

    out = _outputs()
    category = torch.tensor([0, 1, 2, 0, 1])
    total, parts = multitask_loss(out, None, category, alpha=1.0)
    torch.testing.assert_close(total, F.cross_entropy(out["category_logits"], category))
    assert float(parts["match"]) == 0.0


def test_a_task_without_labels_in_the_batch_contributes_zero():
    out = _outputs()
    none = torch.full((5,), IGNORE_INDEX)
    category = torch.tensor([0, 1, 2, 0, 1])
    total, parts = multitask_loss(out, none, category, alpha=0.5)
    torch.testing.assert_close(total, 0.5 * F.cross_entropy(out["category_logits"], category))
    assert float(parts["match"]) == 0.0
    empty, _ = multitask_loss(_outputs(), none, none, alpha=0.5)
    assert float(empty.detach()) == 0.0
    empty.backward()  # still part of the graph


def test_alpha_out_of_range_is_rejected():
    with pytest.raises(InvalidQueryError):
        multitask_loss(_outputs(), None, None, alpha=1.5)


def test_saved_reranker_loads_without_peft(reranker, tmp_path, monkeypatch):
    reranker.save(tmp_path / "ce")
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    loaded = CrossEncoderReranker.load(tmp_path / "ce", device="cpu")
    np.testing.assert_array_equal(
        loaded.rank_scores("mug", TEXTS), reranker.rank_scores("mug", TEXTS)
    )
