"""evaluate() and compare() with a fake pipeline whose rankings are fixed by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from shopsearch.datasets import esci_us_judgments
from shopsearch.errors import InvalidQueryError
from shopsearch.evaluation import protocols
from shopsearch.evaluation.judgments import Judgment, group_by_query, load_judgments
from shopsearch.evaluation.protocols import (
    EvaluablePipeline,
    PipelineResult,
    QueryResult,
    RandomPipeline,
    compare,
    evaluate,
)

LOG2_3 = math.log2(3)


class FakeClock:
    """Stands in for time.perf_counter; only the fake pipeline moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScoredPipeline:
    """Ranks by a fixed score per (query, product); records its calls."""

    def __init__(
        self,
        name: str,
        scores: dict[str, dict[str, float]],
        clock: FakeClock | None = None,
        cost_s: dict[str, float] | None = None,
    ) -> None:
        self.name = name
        self.scores = scores
        self.clock = clock
        self.cost_s = cost_s or {}
        self.calls: list[tuple] = []

    def _tick(self, query: str) -> None:
        if self.clock is not None:
            self.clock.now += self.cost_s.get(query, 0.0)

    def rank(self, query: str, candidates: Sequence[str]) -> list[str]:
        self.calls.append(("rank", query, list(candidates)))
        self._tick(query)
        scores = self.scores.get(query, {})
        return sorted(candidates, key=lambda pid: -scores.get(pid, 0.0))

    def search(self, query: str, k: int) -> list[str]:
        self.calls.append(("search", query, k))
        self._tick(query)
        scores = self.scores.get(query, {})
        return sorted(scores, key=lambda pid: -scores[pid])[:k]


def esci(query: str, product_id: str, label: str, **context: str) -> Judgment:
    gain = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}[label]
    return Judgment(query, product_id, gain, label, **context)


# q1: a=E, b=S, c=I    q2: d=S, e=S, f=C
JUDGMENTS = [
    esci("q1", "a", "E"),
    esci("q1", "b", "S"),
    esci("q1", "c", "I"),
    esci("q2", "d", "S"),
    esci("q2", "e", "S"),
    esci("q2", "f", "C"),
]


def test_rerank_hand_computed() -> None:
    pipeline = ScoredPipeline(
        "fake",
        {
            "q1": {"c": 3, "a": 2, "b": 1},  # -> [c, a, b]
            "q2": {"d": 5, "e": 4, "f": 0.5},  # -> [d, e, f], the ideal order
        },
    )
    result = evaluate(pipeline, JUDGMENTS, protocol="rerank")

    assert pipeline.calls == [("rank", "q1", ["a", "b", "c"]), ("rank", "q2", ["d", "e", "f"])]
    assert result.pipeline == "fake" and result.protocol == "rerank"
    q1, q2 = result.per_query
    assert (q1.query, q2.query) == ("q1", "q2")
    # q1: [c, a, b] gains [0, 1, 0.1] -> DCG = 0 + 1/log2(3) + 0.1/log2(4) = 0.6809298
    #     ideal [1, 0.1, 0]          -> IDCG = 1 + 0.1/log2(3) + 0        = 1.0630930
    q1_ndcg = (1 / LOG2_3 + 0.1 / 2) / (1 + 0.1 / LOG2_3)  # = 0.6405167
    assert q1.ndcg == pytest.approx(q1_ndcg)
    assert q1.ndcg_at_10 == pytest.approx(q1_ndcg)  # only 3 items
    assert q1.mrr_at_10 == pytest.approx(0.5)  # best grade {a} at rank 2
    assert q1.recall_at_100 == 1.0
    # q2: ideal order -> 1 everywhere; best grade {d, e}, d at rank 1
    assert (q2.ndcg, q2.ndcg_at_10, q2.mrr_at_10, q2.recall_at_100) == pytest.approx(
        (1.0, 1.0, 1.0, 1.0)
    )
    summary = result.summary()
    assert summary["queries"] == 2
    assert summary["ndcg"] == pytest.approx((q1_ndcg + 1) / 2)
    assert summary["mrr@10"] == pytest.approx(0.75)
    assert summary["recall@100"] == 1.0


def test_retrieve_hand_computed() -> None:
    judgments = [
        esci("q1", "a", "E"),
        esci("q1", "b", "S"),
        esci("q1", "c", "C"),
        esci("q2", "d", "E"),
    ]
    pipeline = ScoredPipeline(
        "fake",
        {
            "q1": {"z": 9, "a": 8, "c": 7, "b": 6},  # depth 2 -> [z, a]
            "q2": {"x": 1},  # -> [x]: nothing judged
        },
    )
    result = evaluate(pipeline, judgments, protocol="retrieve", depth=2)

    assert pipeline.calls == [("search", "q1", 2), ("search", "q2", 2)]
    q1, q2 = result.per_query
    # q1: [z, a], z unjudged -> gains [0, 1] -> DCG = 1/log2(3) = 0.6309298
    #   nDCG@depth=2: IDCG@2  = 1 + 0.1/log2(3)            = 1.0630930 -> 0.5934852
    #   nDCG@10:      IDCG@10 = 1 + 0.1/log2(3) + 0.01/2   = 1.0680930 -> 0.5907070
    assert q1.ndcg == pytest.approx((1 / LOG2_3) / (1 + 0.1 / LOG2_3))
    assert q1.ndcg_at_10 == pytest.approx((1 / LOG2_3) / (1 + 0.1 / LOG2_3 + 0.01 / 2))
    assert q1.ndcg_at_10 < q1.ndcg  # the ideal@10 also counts c, which depth 2 cuts off
    assert q1.mrr_at_10 == pytest.approx(0.5)  # a (E) at rank 2
    assert q1.recall_at_100 == 1.0  # the only E was found
    assert (q2.ndcg, q2.ndcg_at_10, q2.mrr_at_10, q2.recall_at_100) == (0.0, 0.0, 0.0, 0.0)


def test_retrieve_cuts_a_longer_list_at_depth() -> None:
    class Greedy(ScoredPipeline):
        def search(self, query: str, k: int) -> list[str]:
            return ["x", "y", "a"]  # ignores k

    result = evaluate(Greedy("greedy", {}), [esci("q", "a", "E")], protocol="retrieve", depth=2)
    assert result.per_query[0].ndcg == 0.0  # "a" at rank 3 is past depth 2
    assert result.per_query[0].recall_at_100 == 0.0


def test_retrieve_ideal_uses_all_judged_even_outside_catalog() -> None:
    judgments = [esci("q", "a", "E"), esci("q", "gone", "E")]
    pipeline = ScoredPipeline("fake", {"q": {"a": 1}})
    result = evaluate(pipeline, judgments, protocol="retrieve", catalog_ids={"a", "b"})
    # [a] vs ideal [1, 1]: 1 / (1 + 1/log2(3))
    assert result.per_query[0].ndcg == pytest.approx(1 / (1 + 1 / LOG2_3))
    assert result.per_query[0].recall_at_100 == pytest.approx(0.5)
    assert result.missing_candidates == 1


def test_rerank_drops_candidates_missing_from_catalog() -> None:
    pipeline = ScoredPipeline("fake", {"q1": {"a": 2, "c": 1}, "q2": {"e": 1, "d": 0}})
    result = evaluate(
        pipeline, JUDGMENTS, protocol="rerank", catalog_ids={"a", "c", "d", "e", "zzz"}
    )
    # b (q1) and f (q2) are not in the catalog: dropped and counted
    assert result.missing_candidates == 2
    assert pipeline.calls == [("rank", "q1", ["a", "c"]), ("rank", "q2", ["d", "e"])]
    # q1: [a, c] is the best order of what was given -> 1
    assert result.per_query[0].ndcg == pytest.approx(1.0)
    # q2: [e, d] both S -> also ideal
    assert result.per_query[1].ndcg == pytest.approx(1.0)
    assert evaluate(pipeline, JUDGMENTS, protocol="rerank").missing_candidates == 0


def test_groups_by_user_and_session_and_calls_with_query_text_only() -> None:
    judgments = [
        esci("q", "a", "E", user_id="u1"),
        esci("q", "b", "I", user_id="u1"),
        esci("q", "a", "I", user_id="u2", session_id="s9"),
        esci("q", "b", "E", user_id="u2", session_id="s9"),
    ]
    pipeline = ScoredPipeline("fake", {"q": {"a": 2, "b": 1}})  # always [a, b]
    result = evaluate(pipeline, judgments, protocol="rerank")
    assert pipeline.calls == [("rank", "q", ["a", "b"]), ("rank", "q", ["a", "b"])]
    u1, u2 = result.per_query
    assert (u1.query, u1.user_id, u1.session_id) == ("q", "u1", None)
    assert (u2.query, u2.user_id, u2.session_id) == ("q", "u2", "s9")
    assert u1.ndcg == pytest.approx(1.0)  # u1 wanted a
    assert u2.ndcg == pytest.approx(1 / LOG2_3)  # u2 wanted b, found at rank 2
    assert result.summary()["queries"] == 2


def test_latency_timed_with_perf_counter_and_summarised(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(protocols.time, "perf_counter", clock)
    pipeline = ScoredPipeline("fake", {}, clock=clock, cost_s={"q1": 0.010, "q2": 0.030})
    result = evaluate(pipeline, JUDGMENTS, protocol="rerank")
    assert [q.latency_s for q in result.per_query] == pytest.approx([0.010, 0.030])
    summary = result.summary()
    # p50 of [10, 30] ms = 20 ms; p95 = 10 + 0.95 * 20 = 29 ms; qps = 2 / 0.040 s = 50
    assert summary["p50_ms"] == pytest.approx(20.0)
    assert summary["p95_ms"] == pytest.approx(29.0)
    assert summary["qps"] == pytest.approx(50.0)


def test_summary_keys_exactly() -> None:
    result = evaluate(ScoredPipeline("fake", {}), JUDGMENTS, protocol="rerank")
    assert set(result.summary()) == {
        "pipeline",
        "protocol",
        "queries",
        "ndcg",
        "ndcg@10",
        "mrr@10",
        "recall@100",
        "p50_ms",
        "p95_ms",
        "qps",
    }


def test_empty_result_summary() -> None:
    summary = PipelineResult("p", "rerank").summary()
    assert summary["queries"] == 0
    assert summary["ndcg"] == 0.0 and summary["p95_ms"] == 0.0 and summary["qps"] == 0.0


def test_summary_means() -> None:
    result = PipelineResult(
        "p",
        "retrieve",
        [QueryResult("a", 1.0, 0.5, 1.0, 0.25, 0.1), QueryResult("b", 0.0, 0.5, 0.5, 0.75, 0.3)],
    )
    s = result.summary()
    assert (s["ndcg"], s["ndcg@10"], s["mrr@10"], s["recall@100"]) == pytest.approx(
        (0.5, 0.5, 0.75, 0.5)
    )
    assert s["qps"] == pytest.approx(2 / 0.4)


def test_progress_callback() -> None:
    seen: list[tuple[int, int]] = []
    evaluate(
        ScoredPipeline("fake", {}), JUDGMENTS, protocol="rerank", progress=lambda *a: seen.append(a)
    )
    assert seen == [(1, 2), (2, 2)]


@pytest.mark.parametrize("protocol", ["bm25", "", "RERANK"])
def test_unknown_protocol(protocol: str) -> None:
    with pytest.raises(InvalidQueryError, match="'rerank', 'retrieve'"):
        evaluate(ScoredPipeline("fake", {}), JUDGMENTS, protocol=protocol)


def test_bad_depth() -> None:
    with pytest.raises(InvalidQueryError, match="depth"):
        evaluate(ScoredPipeline("fake", {}), JUDGMENTS, protocol="retrieve", depth=0)


# --- RandomPipeline --------------------------------------------------------------------------

CATALOG = [f"p{i:03d}" for i in range(200)]
CANDIDATES = [f"c{i}" for i in range(20)]


def test_random_pipeline_is_an_evaluable_pipeline() -> None:
    assert isinstance(RandomPipeline(CATALOG), EvaluablePipeline)
    assert RandomPipeline(CATALOG).name == "random"


def test_random_rank_is_a_reproducible_permutation() -> None:
    ranked = RandomPipeline(CATALOG, seed=7).rank("red shoes", CANDIDATES)
    assert sorted(ranked) == sorted(CANDIDATES)
    assert ranked != CANDIDATES
    assert RandomPipeline(CATALOG, seed=7).rank("red shoes", CANDIDATES) == ranked
    assert RandomPipeline(CATALOG, seed=8).rank("red shoes", CANDIDATES) != ranked
    assert RandomPipeline(CATALOG, seed=7).rank("blue shoes", CANDIDATES) != ranked


def test_random_rank_does_not_depend_on_query_order() -> None:
    pipeline = RandomPipeline(CATALOG)
    first = pipeline.rank("a", CANDIDATES)
    pipeline.rank("b", CANDIDATES)
    assert RandomPipeline(CATALOG).rank("a", CANDIDATES) == first
    assert pipeline.rank("a", CANDIDATES) == first


def test_random_search_samples_the_catalog_reproducibly() -> None:
    hits = RandomPipeline(CATALOG, seed=3).search("lamp", 10)
    assert len(hits) == len(set(hits)) == 10
    assert set(hits) <= set(CATALOG)
    assert RandomPipeline(CATALOG, seed=3).search("lamp", 10) == hits
    # a set (hash-ordered) or a reversed list gives the same sample
    assert RandomPipeline(set(CATALOG), seed=3).search("lamp", 10) == hits
    assert RandomPipeline(list(reversed(CATALOG)), seed=3).search("lamp", 10) == hits
    assert RandomPipeline(CATALOG, seed=4).search("lamp", 10) != hits
    assert sorted(RandomPipeline(CATALOG).search("lamp", 1000)) == CATALOG
    assert RandomPipeline([]).search("lamp", 10) == []


# --- compare ---------------------------------------------------------------------------------


def test_compare_prepends_random() -> None:
    fake = ScoredPipeline("fake", {"q1": {"a": 1}, "q2": {"d": 1}})
    results = compare([fake], JUDGMENTS, protocol="retrieve", catalog_ids=CATALOG + ["a", "d"])
    assert [r.pipeline for r in results] == ["random", "fake"]
    assert all(r.protocol == "retrieve" for r in results)
    alone = evaluate(fake, JUDGMENTS, protocol="retrieve")
    assert [q.ndcg for q in results[1].per_query] == [q.ndcg for q in alone.per_query]
    assert len(results[0].per_query) == 2


def test_compare_random_is_reproducible_with_its_seed() -> None:
    def random_ndcgs(seed: int) -> list[float]:
        results = compare([], JUDGMENTS, protocol="rerank", random_seed=seed)
        return [q.ndcg for q in results[0].per_query]

    assert random_ndcgs(1) == random_ndcgs(1)


def test_compare_keeps_an_existing_random() -> None:
    mine = RandomPipeline([], seed=5)
    results = compare([mine], JUDGMENTS, protocol="rerank")
    assert [r.pipeline for r in results] == ["random"]


def test_compare_retrieve_needs_a_catalog_for_random() -> None:
    with pytest.raises(InvalidQueryError, match="catalog_ids"):
        compare([ScoredPipeline("fake", {})], JUDGMENTS, protocol="retrieve")


def test_compare_rejects_duplicate_names() -> None:
    a, b = ScoredPipeline("same", {}), ScoredPipeline("same", {})
    with pytest.raises(InvalidQueryError, match="unique"):
        compare([a, b], JUDGMENTS, protocol="rerank")


def test_compare_progress_counts_all_pipelines() -> None:
    seen: list[tuple[int, int]] = []
    compare(
        [ScoredPipeline("fake", {})],
        iter(JUDGMENTS),  # a one-shot iterable is fine
        protocol="rerank",
        progress=lambda *a: seen.append(a),
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_oracle_beats_random_on_bundled_esci() -> None:
    judgments = load_judgments(esci_us_judgments())
    qrels = group_by_query(judgments)
    oracle = ScoredPipeline("oracle", qrels)  # scores = the judged gains
    random_result, oracle_result = compare([oracle], judgments, protocol="rerank")
    oracle_summary = oracle_result.summary()
    assert oracle_summary["queries"] == 100
    assert oracle_summary["ndcg"] == pytest.approx(1.0)
    assert oracle_summary["mrr@10"] == pytest.approx(1.0)
    assert random_result.summary()["ndcg"] < 0.95
