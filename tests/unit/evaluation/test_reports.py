"""Reports: the rich table, the JSON document and the PNG chart."""

from __future__ import annotations

import functools
import io
import json
import struct
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from rich.console import Console

from shopsearch.evaluation.protocols import PipelineResult, QueryResult
from shopsearch.evaluation.reports import format_table, plot_comparison, print_table, to_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(name: str, scores: list[tuple[float, float, float, float, float]]) -> PipelineResult:
    """A result from per-query (ndcg, ndcg@10, mrr@10, recall@100, latency_s) tuples."""
    per_query = [QueryResult(f"q{i}", *row) for i, row in enumerate(scores)]
    return PipelineResult(name, "rerank", per_query, missing_candidates=0)


@pytest.fixture
def results() -> list[PipelineResult]:
    return [
        # random: worse quality, faster
        result("random", [(0.5, 0.4, 0.5, 1.0, 0.001), (0.7, 0.6, 1.0, 1.0, 0.001)]),
        # bm25: better quality, slower
        result("bm25", [(0.9, 0.8, 1.0, 1.0, 0.010), (0.8, 0.7, 0.5, 1.0, 0.020)]),
    ]


def column(table, header: str) -> list[str]:
    (col,) = [c for c in table.columns if c.header == header]
    return [str(cell) for cell in col.cells]


def test_table_rows_and_columns(results: list[PipelineResult]) -> None:
    table = format_table(results)
    headers = [c.header for c in table.columns]
    assert headers == [
        "pipeline",
        "queries",
        "nDCG",
        "nDCG@10",
        "MRR@10",
        "R@100",
        "p50 ms",
        "p95 ms",
    ]
    assert table.row_count == 2
    assert column(table, "pipeline") == ["random", "bm25"]
    assert column(table, "queries") == ["2", "2"]
    assert "rerank" in str(table.title)


def test_table_bolds_the_best_per_column(results: list[PipelineResult]) -> None:
    table = format_table(results)
    # nDCG means: random 0.6, bm25 0.85 -> bm25 bold
    assert column(table, "nDCG") == ["0.6000", "[bold]0.8500[/bold]"]
    # MRR@10: both 0.75 -> a tie, both bold
    assert column(table, "MRR@10") == ["[bold]0.7500[/bold]", "[bold]0.7500[/bold]"]
    # latency: lower is better -> random bold (p50 1 ms vs 15 ms)
    assert column(table, "p50 ms") == ["[bold]1.00[/bold]", "15.00"]
    assert column(table, "queries") == ["2", "2"]  # never bold


def test_table_single_row_has_no_bold(results: list[PipelineResult]) -> None:
    cells = [str(c) for col in format_table(results[1:]).columns for c in col.cells]
    assert not any("bold" in c for c in cells)


def test_print_table(results: list[PipelineResult]) -> None:
    out = io.StringIO()
    print_table(results, console=Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    assert "random" in text and "bm25" in text and "0.8500" in text and "nDCG@10" in text


def test_mixed_protocols_are_refused(results: list[PipelineResult]) -> None:
    other = PipelineResult("dense", "retrieve", [])
    with pytest.raises(ValueError, match="mix protocols"):
        to_json([*results, other])


def test_to_json_keys(results: list[PipelineResult]) -> None:
    doc = to_json(results, extra={"dataset": "esci_us", "depth": 100})
    bm25 = results[1].summary()
    # the main (first non-random) pipeline's summary is at the top level
    for key in ("queries", "ndcg", "ndcg@10", "mrr@10", "recall@100", "p50_ms", "p95_ms"):
        assert doc[key] == bm25[key]
    assert doc["pipeline"] == "bm25"
    assert doc["protocol"] == "rerank"
    assert doc["dataset"] == "esci_us" and doc["depth"] == 100
    assert doc["pipelines"] == {"random": results[0].summary(), "bm25": bm25}
    assert doc["missing_candidates"] == {"random": 0, "bm25": 0}
    assert list(doc["per_query"]) == ["random", "bm25"]
    first = doc["per_query"]["bm25"][0]
    assert first["query"] == "q0" and first["ndcg"] == 0.9 and first["latency_s"] == 0.010
    assert {"ndcg_at_10", "mrr_at_10", "recall_at_100", "user_id", "session_id"} <= set(first)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only


def test_to_json_only_random(results: list[PipelineResult]) -> None:
    doc = to_json(results[:1])
    assert doc["pipeline"] == "random"
    assert doc["ndcg"] == pytest.approx(0.6)


def test_to_json_extra_wins(results: list[PipelineResult]) -> None:
    assert to_json(results, extra={"protocol": "custom"})["protocol"] == "custom"


def test_plot_comparison_writes_png_with_agg(
    results: list[PipelineResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[type] = []
    original = FigureCanvasAgg.print_png

    @functools.wraps(original)  # matplotlib reads print_png's signature
    def spy(self: FigureCanvasAgg, *args: object, **kwargs: object) -> object:
        rendered.append(type(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FigureCanvasAgg, "print_png", spy)
    path = plot_comparison(results, tmp_path / "reports" / "compare.png")

    assert path == tmp_path / "reports" / "compare.png"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000
    assert rendered and set(rendered) == {FigureCanvasAgg}  # drawn by the Agg canvas
    # IHDR: figsize (10, 4.5) at dpi 120 -> 1200 x 540 pixels
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 540)


def test_plot_comparison_accepts_str_path_and_many_pipelines(tmp_path: Path) -> None:
    many = [
        result(f"pipeline-{i}", [(0.1 * i, 0.1 * i, 0.5, 1.0, 0.001 * (i + 1))]) for i in range(6)
    ]
    path = plot_comparison(many, str(tmp_path / "many.png"))
    assert path.read_bytes()[:8] == PNG_MAGIC
