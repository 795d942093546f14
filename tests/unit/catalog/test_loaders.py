"""Tests for catalog ingestion (shopsearch.catalog.loaders), on real files in tmp_path."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.catalog.loaders import (
    DEFAULT_ALIASES,
    LoadLimits,
    LoadReport,
    RowProblem,
    iter_catalog,
    load_catalog,
    normalize_row,
)
from shopsearch.catalog.schema import Product
from shopsearch.datasets import esci_us_products
from shopsearch.errors import BadRowError, CatalogError, MissingDependencyError

TEN_MB = 10 * 1024 * 1024


def _row(pid: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "title": title or f"Product {pid}", **extra}


def _jsonl(path: Path, lines: list[bytes | str | dict[str, Any]]) -> Path:
    """Write one physical line per item (dicts as JSON, str/bytes as given)."""
    with path.open("wb") as f:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            if isinstance(line, str):
                line = line.encode("utf-8")
            f.write(line + b"\n")
    return path


def _reasons(report: LoadReport) -> dict[int, str]:
    """Problems by line; every problem of a file-backed load has a line."""
    assert all(p.line is not None for p in report.problems)
    return {p.line: p.reason for p in report.problems if p.line is not None}


# --------------------------------------------------------------------------- bundled data


def test_bundled_esci_catalog_loads_clean() -> None:
    report = load_catalog(esci_us_products())

    assert (report.ok, report.failed, report.rows_read) == (6_764, 0, 6_764)
    by_id = {p.id: p for p in report.products}
    assert len(by_id) == 6_764
    book = by_id["006287716X"]
    assert book.title == "The Book of Dragons: An Anthology"
    assert book.category == ("Books", "Literature & Fiction", "Short Stories & Anthologies")
    assert book.price == 32.9
    assert book.rating_count == 197
    assert book.attributes == {"is_book": True}
    assert by_id["0142420956"].price is None  # null in the file
    assert all("is_book" in p.attributes for p in report.products)
    assert all(isinstance(p.category, tuple) for p in report.products)


def test_tiny_fixture_catalog_loads_clean() -> None:
    report = load_catalog(Path(__file__).parents[2] / "data" / "tiny_catalog.jsonl")
    assert (report.ok, report.failed) == (50, 0)


# --------------------------------------------------------------------------- JSONL robustness


@pytest.fixture
def messy_jsonl(tmp_path: Path) -> Path:
    big_title = {"id": "F", "title": "x" * TEN_MB}
    return _jsonl(
        tmp_path / "messy.jsonl",
        [
            _row("A", "First A"),  # 1 good
            '{"id": "B", "title": ',  # 2 malformed JSON
            "",  # 3 blank: skipped silently
            {"title": "no id here"},  # 4 missing id
            {"id": "C"},  # 5 missing title
            _row("D"),  # 6 good
            _row("A", "Second A"),  # 7 duplicate id
            _row("E", price="cheap"),  # 8 non-numeric price
            json.dumps(big_title),  # 9 a 10 MB line
            "[1, 2, 3]",  # 10 not an object
            b'{"id": "G", "title": "bad \xff\xfe bytes"}',  # 11 invalid UTF-8
            {"asin": "H", "product_title": "Aliased H"},  # 12 good, via aliases
            "   \t",  # 13 whitespace only: skipped silently
            _row("I", price="$1,299.00"),  # 14 good
        ],
    )


def test_messy_jsonl_reports_every_problem_with_its_line(messy_jsonl: Path) -> None:
    report = load_catalog(messy_jsonl)

    assert {p.id for p in report.products} == {"A", "D", "H", "I"}
    assert [p.id for p in report.products] == ["A", "D", "H", "I"]
    assert next(p for p in report.products if p.id == "A").title == "First A"
    assert next(p for p in report.products if p.id == "I").price == 1299.0
    reasons = _reasons(report)
    assert sorted(reasons) == [2, 4, 5, 7, 8, 9, 10, 11]
    assert reasons[2].startswith("malformed JSON: Expecting value")
    assert reasons[4] == "missing required field 'id'"
    assert reasons[5] == "missing required field 'title'"
    assert reasons[7] == "duplicate id 'A' (first seen at line 1)"
    assert "price" in reasons[8] and "'cheap'" in reasons[8]
    assert reasons[9].startswith("row is larger than 1,000,000 bytes")
    assert "not a JSON object" in reasons[10]
    assert reasons[11].startswith("invalid UTF-8")
    assert (report.ok, report.failed, report.rows_read) == (4, 8, 12)
    assert all(p.source == str(messy_jsonl) for p in report.problems)
    ids = {p.line: p.product_id for p in report.problems}
    assert (ids[4], ids[5], ids[7], ids[8]) == (None, "C", "A", "E")
    assert next(p for p in report.problems if p.line == 8).location == f"{messy_jsonl}:8"


def test_over_long_line_is_skipped_without_loading_it(messy_jsonl: Path) -> None:
    tracemalloc.start()
    try:
        report = load_catalog(messy_jsonl)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok == 4
    assert peak < 4 * 1024 * 1024  # the 10 MB line is never held whole


def test_over_long_line_reports_its_size(tmp_path: Path) -> None:
    limits = LoadLimits(max_row_bytes=100)
    exact = json.dumps(_row("ok", "t" * 60))
    exact = exact[:-1] + " " * (100 - len(exact)) + "}"  # exactly 100 bytes
    path = _jsonl(tmp_path / "c.jsonl", [exact, exact.replace("ok", "no") + " ", _row("z")])
    report = load_catalog(path, limits=limits)
    assert [p.id for p in report.products] == ["ok", "z"]
    assert _reasons(report) == {2: "row is larger than 100 bytes (101 bytes)"}


def test_over_long_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(json.dumps(_row("a")).encode() + b"\n" + b"x" * 300_000)
    report = load_catalog(path, limits=LoadLimits(max_row_bytes=1_000))
    assert [p.id for p in report.products] == ["a"]
    assert _reasons(report) == {2: "row is larger than 1,000 bytes (300,000 bytes)"}


def test_strict_mode_raises_first_bad_row_with_location(messy_jsonl: Path) -> None:
    with pytest.raises(BadRowError) as caught:
        load_catalog(messy_jsonl, strict=True)
    assert (caught.value.source, caught.value.line) == (str(messy_jsonl), 2)
    assert str(caught.value).startswith(f"{messy_jsonl}:2: malformed JSON")


def test_strict_mode_raises_on_duplicate(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [_row("A"), _row("B"), _row("A")])
    with pytest.raises(BadRowError, match="duplicate id 'A' \\(first seen at line 1\\)") as e:
        load_catalog(path, strict=True)
    assert e.value.line == 3


def test_iter_catalog_yields_errors_with_location(messy_jsonl: Path) -> None:
    items = list(iter_catalog(messy_jsonl))
    assert [line for line, _ in items] == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]
    for line, item in items:
        if isinstance(item, BadRowError):
            assert (item.source, item.line) == (str(messy_jsonl), line)
        else:
            assert isinstance(item, Product)


def test_byte_order_mark_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    rows = [json.dumps(_row(pid)).encode() for pid in "ab"]
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(rows) + b"\r\n")
    report = load_catalog(path)
    assert [p.id for p in report.products] == ["a", "b"] and not report.problems


def test_deeply_nested_json_is_a_row_problem(tmp_path: Path) -> None:
    deep = '{"id": "x", "title": "t", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = _jsonl(tmp_path / "deep.jsonl", [deep, _row("ok")])
    report = load_catalog(path)
    assert [p.id for p in report.products] == ["ok"]
    assert report.problems[0].line == 1


@pytest.mark.parametrize("name", ["c.jsonl.gz", "c.json.gz", "c.ndjson.gz"])
def test_gzip_jsonl(tmp_path: Path, name: str) -> None:
    lines = [json.dumps(_row("A", price=3)), "not json", "", json.dumps(_row("B"))]
    path = tmp_path / name
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    report = load_catalog(path)
    assert [(p.id, p.price) for p in report.products] == [("A", 3.0), ("B", None)]
    assert [p.line for p in report.problems] == [2]


def test_ndjson_suffix(tmp_path: Path) -> None:
    report = load_catalog(_jsonl(tmp_path / "c.NDJSON", [_row("A")]))
    assert report.ok == 1


def test_corrupt_gzip_raises_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    data = gzip.compress(b"".join(json.dumps(_row(str(i))).encode() + b"\n" for i in range(999)))
    path.write_bytes(data[: len(data) // 2])  # truncated mid-stream
    with pytest.raises(CatalogError, match="c.jsonl.gz"):
        load_catalog(path)


# --------------------------------------------------------------------------- CSV


CSV_TEXT = (
    "id,title,price,category,brand,bullet_points,is_book\n"  # 1 header
    "c1,Mug,$12.50,Home > Kitchen,Acme,,false\n"  # 2 good
    'c2,"Quoted, title",3,A>B>,,"one\ntwo",true\n'  # 3-4 good, multi-line cell
    "c3,Cheap thing,cheap,,,,\n"  # 5 bad price
    "c4,Too few\n"  # 6 wrong column count
    "\n"  # 7 blank
    "c5,Plain,,,,,\n"  # 8 good, empty cells
    ",,,,,,\n"  # 9 empty cells only: skipped
    "c1,Again,1,,,,\n"  # 10 duplicate
)


def test_csv_loads_with_physical_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    report = load_catalog(path)

    by_id = {p.id: p for p in report.products}
    assert list(by_id) == ["c1", "c2", "c5"]
    assert by_id["c1"].price == 12.5
    assert by_id["c1"].category == ("Home", "Kitchen")
    assert by_id["c1"].brand == "Acme"
    assert by_id["c1"].attributes == {"is_book": "false"}
    assert by_id["c2"].title == "Quoted, title"
    assert by_id["c2"].category == ("A", "B")
    assert by_id["c2"].bullet_points == "one\ntwo"
    assert by_id["c5"].price is None and by_id["c5"].brand == ""
    reasons = _reasons(report)
    assert sorted(reasons) == [5, 6, 10]
    assert "price" in reasons[5] and "'cheap'" in reasons[5]
    assert reasons[6] == "row has 2 fields, header has 7"
    assert reasons[10] == "duplicate id 'c1' (first seen at line 2)"


def test_csv_gzip_bom_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.csv.gz"
    body = b"\xef\xbb\xbfID, Title \na,Alpha\nb,Bad \xff byte\nc," + b"z" * 5_000 + b"\nd,Delta\n"
    path.write_bytes(gzip.compress(body))
    report = load_catalog(path, limits=LoadLimits(max_row_bytes=1_000))
    assert [p.id for p in report.products] == ["a", "d"]
    reasons = _reasons(report)
    assert sorted(reasons) == [3, 4]
    assert reasons[3].startswith("invalid UTF-8")
    assert reasons[4] == "row is larger than 1,000 bytes (5,002 bytes)"


def test_csv_attributes_column_holds_json(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,title,attributes\na,A,"{""size"": ""XL""}"\nb,B,not json\n')
    report = load_catalog(path)
    assert report.products[0].attributes == {"size": "XL"}
    assert _reasons(report)[3].startswith("attributes must be a JSON object")


def test_csv_duplicate_header_is_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,title,title\na,A,B\n")
    with pytest.raises(CatalogError, match="duplicate column 'title'"):
        load_catalog(path)


# --------------------------------------------------------------------------- Parquet


def test_parquet_loads_with_row_numbers(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "asin": ["p1", "p2", "p3", "p4", "p5"],
            "title": ["One", None, "Three", "Four", "Five"],
            "price": [1.5, 2.0, -3.0, None, 5.0],
            "category": [["A", "B"], [], None, ["C"], ["D", "", " E "]],
            "added": [dt.date(2024, 1, d) for d in range(1, 6)],
            "is_book": [False, True, False, True, False],
        }
    )
    path = tmp_path / "c.parquet"
    pq.write_table(table, path, row_group_size=2)
    report = load_catalog(path)

    assert [p.id for p in report.products] == ["p1", "p4", "p5"]
    p1, p4, p5 = report.products
    assert (p1.price, p1.category) == (1.5, ("A", "B"))
    assert p4.price is None
    assert p5.category == ("D", "E")
    assert p1.attributes == {"added": "2024-01-01", "is_book": False}
    assert _reasons(report) == {
        2: "missing required field 'title'",
        3: "price must not be negative, got -3.0",
    }
    assert report.problems[0].location == f"{path}:2"


def test_parquet_duplicate_mentions_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["a", "a"], "title": ["x", "y"]}), path)
    assert _reasons(load_catalog(path)) == {2: "duplicate id 'a' (first seen at row 1)"}


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match=r"shopsearch\[parquet\]"):
        load_catalog(path)


def test_not_really_parquet_is_a_catalog_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "c.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(CatalogError, match="c.parquet"):
        load_catalog(path)


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["c.txt", "c.json", "c.gz", "c.xlsx", "catalog"])
def test_unknown_suffix_raises_catalog_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("{}")
    with pytest.raises(CatalogError, match="unknown catalog format") as caught:
        iter_catalog(path)  # raised at the call, not on first iteration
    assert str(path) in str(caught.value)


def test_missing_file_raises_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(CatalogError, match="not found") as caught:
        load_catalog(path)
    assert str(path) in str(caught.value)
    assert not isinstance(caught.value, BadRowError)


def test_directory_raises_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "dir.jsonl"
    path.mkdir()
    with pytest.raises(CatalogError, match="not a file"):
        load_catalog(path)


def test_empty_files_load_nothing(tmp_path: Path) -> None:
    for name in ("e.jsonl", "e.csv"):
        (tmp_path / name).write_bytes(b"")
        report = load_catalog(tmp_path / name)
        assert (report.ok, report.failed, report.rows_read) == (0, 0, 0)


# --------------------------------------------------------------------------- progress


@pytest.mark.parametrize(
    ("rows", "calls"),
    [(0, [0]), (999, [999]), (2_000, [1_000, 2_000]), (2_500, [1_000, 2_000, 2_500])],
)
def test_progress_is_reported(tmp_path: Path, rows: int, calls: list[int]) -> None:
    path = _jsonl(tmp_path / "p.jsonl", [_row(str(i)) for i in range(rows)])
    seen: list[int] = []
    report = load_catalog(path, progress=seen.append)
    assert seen == calls
    assert report.rows_read == rows


# --------------------------------------------------------------------------- aliases


def test_default_aliases_cover_the_documented_names() -> None:
    expected = {
        "asin": "id",
        "product_id": "id",
        "sku": "id",
        "name": "title",
        "product_title": "title",
        "product_description": "description",
        "product_bullet_point": "bullet_points",
        "product_brand": "brand",
        "product_color": "color",
        "categories": "category",
        "stars": "rating",
        "average_rating": "rating",
        "num_ratings": "rating_count",
        "review_count": "rating_count",
        "image_url": "image",
    }
    assert expected.items() <= DEFAULT_ALIASES.items()


def test_custom_alias_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("SKU_Code,name,Stars\nk1,Kettle,4.5\n")
    report = load_catalog(path, aliases={"sku_code": "id"})
    assert [(p.id, p.title, p.rating) for p in report.products] == [("k1", "Kettle", 4.5)]
    assert report.products[0].attributes == {}


@pytest.mark.parametrize(
    "raw",
    [
        {"asin": "X", "id": "Y", "title": "t"},
        {"id": "Y", "asin": "X", "title": "t"},
    ],
)
def test_canonical_field_beats_alias(raw: dict[str, Any]) -> None:
    product = normalize_row(raw)
    assert product.id == "Y"
    assert product.attributes == {"asin": "X"}


def test_field_names_are_matched_case_insensitively() -> None:
    product = normalize_row({" ID ": 7, "Title": " Kettle ", "PRICE": "2", "Is_Book": False})
    assert (product.id, product.title, product.price) == ("7", "Kettle", 2.0)
    assert product.attributes == {"Is_Book": False}


def test_user_aliases_override_defaults() -> None:
    raw = {"asin": "A1", "sku": "S1", "title": "t"}
    product = normalize_row(raw, aliases={"asin": "legacy_asin"})
    assert product.id == "S1"
    assert product.attributes == {"legacy_asin": "A1"}
    # a canonical name can be mapped away too, letting an alias take its place
    product = normalize_row({"id": 3, "sku": "S1", "title": "t"}, aliases={"id": "row"})
    assert (product.id, product.attributes) == ("S1", {"row": 3})


def test_two_aliases_first_wins() -> None:
    product = normalize_row({"sku": "S", "asin": "A", "name": "n"})
    assert product.id == "S"
    assert product.attributes == {"asin": "A"}


# --------------------------------------------------------------------------- field parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12.0),
        (12.5, 12.5),
        ("12.5", 12.5),
        (" 12.50 ", 12.5),
        ("$1,299.00", 1299.0),
        ("12.99 USD", 12.99),
        ("USD 12.99", 12.99),
        ("€5", 5.0),
        ("5 €", 5.0),
        ("US$5", 5.0),
        ("£0.99", 0.99),
        ("1e3", 1000.0),
        (".5", 0.5),
        (0, 0.0),
        (-0.0, 0.0),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_price_parsing(value: Any, expected: float | None) -> None:
    assert normalize_row(_row("p", price=value)).price == expected


@pytest.mark.parametrize(
    "value",
    ["cheap", "12 apples", "1,2", "1,2345", "nan", "inf", "$", "--1", "1.2.3", "-1", -0.01,
     True, [1], {"amount": 1}, math.nan, math.inf, 10**400],
)  # fmt: skip
def test_bad_price_is_a_row_error_naming_the_value(value: Any) -> None:
    with pytest.raises(BadRowError, match="price") as caught:
        normalize_row(_row("p", price=value))
    assert caught.value.product_id == "p"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(4.5, 4.5), ("4.5", 4.5), (5, 5.0), (0, 0.0), (10, 10.0), ("", None), (None, None)],
)
def test_rating_parsing(value: Any, expected: float | None) -> None:
    assert normalize_row(_row("p", rating=value)).rating == expected


@pytest.mark.parametrize("value", [10.5, -1, "five", "$4", True, math.nan, [4]])
def test_bad_rating(value: Any) -> None:
    with pytest.raises(BadRowError, match="rating"):
        normalize_row(_row("p", rating=value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), ("1,234", 1234), ("12", 12), (12.0, 12), ("7.0", 7), (0, 0), ("", None),
     (None, None)],
)  # fmt: skip
def test_rating_count_parsing(value: Any, expected: int | None) -> None:
    assert normalize_row(_row("p", rating_count=value)).rating_count == expected


@pytest.mark.parametrize(
    "value", [-1, 1.5, "many", True, "1,23", "-3", 2**63, math.inf, "1.5", [1]]
)
def test_bad_rating_count(value: Any) -> None:
    with pytest.raises(BadRowError, match="rating_count"):
        normalize_row(_row("p", rating_count=value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["A", " B ", "", None, "C"], ("A", "B", "C")),
        (("A",), ("A",)),
        ("A > B > C", ("A", "B", "C")),
        ("A>B", ("A", "B")),
        (" Home & Kitchen ", ("Home & Kitchen",)),
        ("", ()),
        ([], ()),
        (None, ()),
    ],
)
def test_category_forms(value: Any, expected: tuple[str, ...]) -> None:
    assert normalize_row(_row("p", category=value)).category == expected


@pytest.mark.parametrize("value", [5, {"a": "b"}, [["nested"]], True])
def test_bad_category(value: Any) -> None:
    with pytest.raises(BadRowError, match="category"):
        normalize_row(_row("p", category=value))


def test_text_fields() -> None:
    product = normalize_row(
        {
            "id": " 42 ",
            "title": 1984,
            "description": None,
            "bullet_points": [" first ", "", None, "second"],
            "brand": 3.5,
            "color": "  Cafe\u0301 ",
            "image_url": "https://example.com/a.jpg",
        }
    )
    assert product.id == "42" and product.title == "1984"
    assert product.description == ""
    assert product.bullet_points == "first\nsecond"
    assert product.brand == "3.5"
    assert product.color == "Café"  # stripped and NFC
    assert product.image == "https://example.com/a.jpg"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"title": "t"}, "missing required field 'id'"),
        ({"id": None, "title": "t"}, "missing required field 'id'"),
        ({"id": "  ", "title": "t"}, "missing required field 'id' (value is empty)"),
        ({"id": "x", "title": ""}, "missing required field 'title' (value is empty)"),
        ({"id": True, "title": "t"}, "id must be a string or an integer"),
        ({"id": 1.5, "title": "t"}, "id must be a string or an integer"),
        ({"id": ["x"], "title": "t"}, "id must be a string or an integer"),
        ({"id": "x", "title": ["t"]}, "title must be a string"),
        ({"id": "x", "title": "t", "brand": {"n": 1}}, "brand must be a string"),
        ({"id": "x", "title": "t", "color": ["red"]}, "color must be a string"),
        ({"id": "x", "title": "t", "attributes": [1]}, "attributes must be an object"),
    ],
)
def test_bad_fields(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRowError) as caught:
        normalize_row(raw)
    assert caught.value.reason.startswith(message)
    assert (caught.value.source, caught.value.line) == ("", None)


def test_integer_ids_are_strings() -> None:
    assert normalize_row({"id": 123, "title": "t"}).id == "123"
    assert normalize_row({"id": 123.0, "title": "t"}).id == "123"


def test_attributes_collect_extras_and_stay_json() -> None:
    product = normalize_row(
        {
            "id": "a",
            "title": "t",
            "attributes": {"size": " XL ", "material": "steel"},
            "material": "ignored: the explicit attributes win",
            "is_book": False,
            "weight": math.nan,
            "added": dt.datetime(2024, 5, 1, 12, 30),
            "tags": ("x", "y"),
        }
    )
    assert product.attributes == {
        "size": "XL",
        "material": "steel",
        "is_book": False,
        "weight": None,
        "added": "2024-05-01T12:30:00",
        "tags": ["x", "y"],
    }
    json.dumps(product.to_dict(), allow_nan=False)


def test_blank_field_names_are_dropped() -> None:
    assert normalize_row({"": 1, "  ": 2, "id": "a", "title": "t"}).attributes == {}


def test_not_a_mapping() -> None:
    with pytest.raises(BadRowError, match="mapping"):
        normalize_row(["id", "title"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "t" * 1_001, "title is 1,001 characters, limit 1,000"),
        ("id", "i" * 257, "id is 257 characters, limit 256"),
        ("brand", "b" * 1_001, "brand is 1,001 characters, limit 1,000"),
        ("image", "i" * 1_001, "image is 1,001 characters, limit 1,000"),
        ("description", "d" * 100_001, "description is 100,001 characters, limit 100,000"),
        ("bullet_points", ["b" * 60_000] * 2, "bullet_points is 120,001 characters"),
        ("category", ["c"] * 21, "category has 21 levels, limit 20"),
        ("category", ["ok", "c" * 1_001], "category level 2 is 1,001 characters, limit 1,000"),
    ],
)
def test_default_limits(field: str, value: Any, message: str) -> None:
    raw = {"id": "x", "title": "t", field: value}
    with pytest.raises(BadRowError) as caught:
        normalize_row(raw)
    assert caught.value.reason.startswith(message)


def test_limits_at_the_boundary_pass() -> None:
    limits = LoadLimits()
    product = normalize_row(
        {"id": "i" * 256, "title": "t" * 1_000, "category": ["c" * 1_000] * 20}, limits=limits
    )
    assert len(product.category) == 20


def test_custom_limits(tmp_path: Path) -> None:
    limits = LoadLimits(max_title_chars=10)
    path = _jsonl(tmp_path / "c.jsonl", [_row("a", "short"), _row("b", "much too long")])
    report = load_catalog(path, limits=limits)
    assert [p.id for p in report.products] == ["a"]
    assert _reasons(report) == {2: "title is 13 characters, limit 10"}
    assert report.problems[0].product_id == "b"


# --------------------------------------------------------------------------- small types


def test_row_problem_location_and_report_counts() -> None:
    assert RowProblem("c.jsonl", 3, "r").location == "c.jsonl:3"
    assert RowProblem("c.jsonl", None, "r").location == "c.jsonl"
    report = LoadReport(
        products=[Product(id="a", title="t")],
        problems=[RowProblem("c", 1, "x"), RowProblem("c", 2, "y")],
        rows_read=3,
    )
    assert (report.ok, report.failed) == (1, 2)


# --------------------------------------------------------------------------- property

_KEYS = st.one_of(
    st.sampled_from(
        ["ID", " title ", "price", "rating", "rating_count", "category", "brand", "color",
         "description", "bullet_points", "image", "attributes", *DEFAULT_ALIASES]
    ),
    st.text(max_size=8),
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
# rows that usually have a usable id and title, so that the other fields get exercised
_ROWS = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {}, optional={"id": st.text(min_size=1) | _JSON, "title": st.text(min_size=1) | _JSON}
    ),
    st.dictionaries(_KEYS, _JSON, max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(_ROWS)
def test_normalize_row_only_raises_bad_row_error(raw: dict[str, Any]) -> None:
    try:
        product = normalize_row(raw)
    except BadRowError as error:
        assert error.reason
        return
    assert product.id and product.id == product.id.strip()
    assert product.title and product.title == product.title.strip()
    assert all(isinstance(level, str) and level for level in product.category)
    for number in (product.price, product.rating):
        assert number is None or math.isfinite(number)
    json.dumps(product.to_dict(), allow_nan=False)


def test_a_lone_surrogate_escape_is_a_located_bad_row(tmp_path: Path) -> None:
    """JSON may escape half a surrogate pair ("\\ud800"): valid JSON, not storable text."""
    path = tmp_path / "surrogates.jsonl"
    path.write_text(
        '{"id": "A", "title": "fine"}\n'
        '{"id": "B", "title": "broken \\ud800 text"}\n'
        '{"id": "C", "title": "ok", "attrs": {"k": ["x", "\\udfff"]}}\n'
        '{"id": "D", "title": "a pair is fine \\ud83d\\ude00"}\n',
        encoding="utf-8",
    )
    report = load_catalog(path)
    assert [p.id for p in report.products] == ["A", "D"]
    reasons = _reasons(report)
    assert reasons == {
        2: "field 'title' holds an invalid Unicode escape (lone surrogate)",
        3: "field 'attrs.k[1]' holds an invalid Unicode escape (lone surrogate)",
    }
    with pytest.raises(BadRowError, match="lone surrogate"):
        normalize_row({"id": "E", "title": "\udc80"})


# --------------------------------------------------------------------------- API rows


@pytest.mark.parametrize("value", [1e308, 1e13, "1e308", "$2,000,000,000,000"])
def test_a_price_over_the_maximum_is_a_row_error_saying_why(value: Any) -> None:
    with pytest.raises(BadRowError, match="price must be at most 1,000,000,000,000") as caught:
        normalize_row(_row("p", price=value))
    assert "unit or data error" in caught.value.reason
    assert normalize_row(_row("p", price=1e12)).price == 1e12


@pytest.mark.parametrize(
    ("product_id", "reason"),
    [
        ("a\x00b", "id holds the control character U+0000"),
        ("B01\n", None),  # surrounding whitespace is stripped, as before
        ("B0\t1", "id holds the control character U+0009"),
        ("abc\u202edcb", "id holds the invisible bidirectional control U+202E"),
        ("x\u2069", "id holds the invisible bidirectional control U+2069"),
        ("Größe-42", None),
    ],
)
def test_ids_hold_no_control_or_bidirectional_characters(product_id: str, reason: str | None):
    if reason is None:
        assert normalize_row(_row(product_id)).id == product_id.strip()
        return
    with pytest.raises(BadRowError) as caught:
        normalize_row(_row(product_id))
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("price", "9.99", "price must be a JSON number, got str '9.99'"),
        ("price", True, "price must be a JSON number, got bool True"),
        ("rating", "4.5", "rating must be a JSON number"),
        ("rating_count", 12.0, "rating_count must be a JSON integer"),
        ("title", 12, "title must be a string, got int 12"),
        ("id", 7, "id must be a string"),
        ("category", ["A", 3], "category must be a list of strings"),
        ("attributes", "{}", "attributes must be a JSON object"),
    ],
)
def test_json_rows_from_the_api_convert_nothing(field: str, value: Any, reason: str) -> None:
    row = {"id": "p", "title": "Mug", field: value}
    with pytest.raises(BadRowError) as caught:
        normalize_row(row, json_types=True)
    assert caught.value.reason == reason or caught.value.reason.startswith(reason)
    if isinstance(value, str) and field in ("price", "rating"):
        normalize_row(row)  # a file row: converted (a CSV cell is always text)


def test_json_rows_accept_json_types_and_aliases() -> None:
    row = {
        "asin": "B01",
        "title": "Mug",
        "price": 4,
        "rating": 4.5,
        "rating_count": 10,
        "category": "Home > Mugs",
        "bullet_points": ["a", "b"],
        "brand": None,
    }
    product = normalize_row(row, json_types=True)
    assert (product.id, product.price, product.rating_count) == ("B01", 4.0, 10)
    assert product.category == ("Home", "Mugs") and product.brand == ""
