"""The ``shopsearch`` command, run in-process through ``main``."""

from __future__ import annotations

import json

import pytest
from tests_support import TINY_CATALOG, TINY_JUDGMENTS

from shopsearch.cli import main
from shopsearch.pipeline import SearchPipeline


@pytest.fixture(scope="module")
def bad_catalog(tmp_path_factory):
    """Good ESCI rows with every kind of bad row between them."""
    good = TINY_CATALOG.read_text(encoding="utf-8").splitlines()[:6]
    dup_id = json.loads(good[0])["asin"]
    lines = [
        good[0],
        '{"asin": "BROKEN", "title": "unterminated',  # 2 malformed JSON
        good[1],
        json.dumps({"title": "No id at all"}),  # 4 missing id
        good[2],
        json.dumps({"asin": dup_id, "title": "Same id again"}),  # 6 duplicate id
        json.dumps({"asin": "PRICEY", "title": "Bottle", "price": "cheap"}),  # 7 bad price
        good[3],
        json.dumps({"asin": "HUGE", "title": "x" * 10_000_000}),  # 9 10 MB title
        good[4],
        good[5],
    ]
    path = tmp_path_factory.mktemp("bad") / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, {json.loads(line)["asin"] for line in good}


def test_index_reports_every_bad_row_and_indexes_every_good_one(
    bad_catalog, tmp_path, capsys, encoder
):
    path, good_ids = bad_catalog
    errors = tmp_path / "rejected.jsonl"
    assert main(["index", str(path), "--out", str(tmp_path / "idx"), "--errors", str(errors)]) == 0
    err = capsys.readouterr().err
    for line, reason in [
        (2, "malformed JSON"),
        (4, "'id'"),
        (6, "duplicate id"),
        (7, "price"),
        (9, "larger than"),
    ]:
        assert f"bad.jsonl:{line}" in err, err
        assert reason in err
    assert "11 rows read, 6 accepted, 5 rejected" in err
    rejected = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2, 4, 6, 7, 9]
    with SearchPipeline.open(tmp_path / "idx", encoder=encoder) as pipeline:
        assert set(pipeline.snapshot.id_to_row) == good_ids


def test_strict_mode_stops_at_the_first_bad_row(bad_catalog, tmp_path, capsys):
    path, _ = bad_catalog
    assert main(["index", str(path), "--out", str(tmp_path / "idx"), "--strict"]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err
    assert not (tmp_path / "idx" / "catalog.sqlite").exists()


def test_search_json_and_filters(tiny_index_dir, capsys):
    assert (
        main(
            [
                "search",
                str(tiny_index_dir),
                "ugg slippers",
                "-k",
                "3",
                "--json",
                "--filter",
                "rating>=4.5",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["pipeline"] == "hybrid" and len(result["hits"]) == 3
    for hit in result["hits"]:
        assert set(hit["scores"]) == {"bm25", "dense", "fused"}
        assert hit["product"]["rating"] >= 4.5
    assert {"brand", "category", "price", "rating", "color"} <= set(result["facets"])


def test_bad_filter_is_a_clear_error(tiny_index_dir, capsys):
    assert main(["search", str(tiny_index_dir), "x", "--filter", "size=XL"]) == 1
    assert "bad filter 'size=XL'" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["rerank", "retrieve"])
def test_eval_json_holds_every_metric_and_a_chart(tiny_index_dir, tmp_path, capsys, protocol):
    plot = tmp_path / "chart.png"
    assert (
        main(
            [
                "eval",
                str(tiny_index_dir),
                "--judgments",
                str(TINY_JUDGMENTS),
                "--protocol",
                protocol,
                "--pipeline",
                "bm25,dense",
                "--pipeline",
                "hybrid",
                "--json",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    for key in ("queries", "ndcg", "ndcg@10", "mrr@10", "recall@100", "p50_ms", "p95_ms"):
        assert key in data
    assert data["queries"] == 5 and data["protocol"] == protocol
    assert list(data["pipelines"]) == ["random", "bm25", "dense", "hybrid"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_upsert_and_delete_commands(tiny_index_dir, tmp_path, capsys, encoder):
    import shutil

    shutil.copytree(tiny_index_dir, tmp_path / "idx")
    new = tmp_path / "new.csv"
    new.write_text("sku,name,price,category\nCSV-1,Zebra print yoga mat,$19.99,Sports > Yoga\n")
    assert main(["upsert", str(tmp_path / "idx"), str(new), "--field", "sku=id"]) == 0
    assert "+1 net, 51 total" in capsys.readouterr().out
    assert main(["delete", str(tmp_path / "idx"), "CSV-1", "nope"]) == 0
    assert "Deleted 1 of 2 ids (1 unknown); 50 products remain" in capsys.readouterr().out
