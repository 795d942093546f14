"""Loading judgments files, grouping them, and splitting queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopsearch.datasets import esci_us_judgments
from shopsearch.errors import JudgmentsError
from shopsearch.evaluation.judgments import (
    ESCI_GAINS,
    Judgment,
    group_by_context,
    group_by_query,
    load_judgments,
    split_queries,
)


def write_lines(tmp_path: Path, lines: list[str], name: str = "judgments.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(**fields: object) -> str:
    return json.dumps(fields)


def test_esci_gains() -> None:
    assert ESCI_GAINS == {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}


def test_load_esci_labels_case_insensitive(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        [
            row(query="q", product_id="a", label="E"),
            row(query="q", product_id="b", label="s"),
            row(query="q", product_id="c", label=" c "),
            row(query="q", product_id="d", label="I"),
        ],
    )
    assert load_judgments(path) == [
        Judgment("q", "a", 1.0, "E"),
        Judgment("q", "b", 0.1, "S"),
        Judgment("q", "c", 0.01, "C"),
        Judgment("q", "d", 0.0, "I"),
    ]


def test_load_numeric_labels(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        [
            row(query="q", product_id="a", label=3),
            row(query="q", product_id="b", label=0.5),
            row(query="q", product_id="c", label="2.25"),
            row(query="q", product_id="d", label=0),
        ],
    )
    got = load_judgments(str(path))  # a str path works too
    assert [(j.product_id, j.gain, j.label) for j in got] == [
        ("a", 3.0, None),
        ("b", 0.5, None),
        ("c", 2.25, None),
        ("d", 0.0, None),
    ]


def test_load_user_and_session(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        [
            row(query="q", product_id="a", label="E", user_id="u1", session_id="s1"),
            row(query="q", product_id="a", label="I", user_id="u2"),
        ],
    )
    first, second = load_judgments(path)
    assert (first.user_id, first.session_id) == ("u1", "s1")
    assert (second.user_id, second.session_id) == ("u2", None)


def test_blank_lines_are_skipped_and_lines_counted(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        ["", row(query="q", product_id="a", label="E"), "   ", "{not json"],
    )
    with pytest.raises(JudgmentsError, match=r"judgments\.jsonl:4: malformed JSON"):
        load_judgments(path)
    path.write_text("\n" + row(query="q", product_id="a", label="E") + "\n\n", encoding="utf-8")
    assert len(load_judgments(path)) == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"query": "q", "product_id": "b", "label": "E"', "malformed JSON"),
        (row(query="q", product_id="b", label="X"), "unknown label 'X'"),
        (row(query="q", product_id="b", label="exact"), "unknown label"),
        (row(query="q", product_id="b", label=-0.5), "gain must be >= 0"),
        (row(query="q", product_id="b", label="-1"), "gain must be >= 0"),
        (row(query="q", product_id="b", label="nan"), "gain must be finite"),
        (row(query="q", product_id="b", label="inf"), "gain must be finite"),
        (row(query="q", product_id="b", label=True), "label must be"),
        (row(query="q", product_id="b", label=[1]), "label must be"),
        (row(query="q", product_id="b"), "missing field 'label'"),
        (row(query="q", product_id="b", label=None), "missing field 'label'"),
        (row(product_id="b", label="E"), "missing field 'query'"),
        (row(query="q", label="E"), "missing field 'product_id'"),
        (row(query="", product_id="b", label="E"), "query must be a non-empty string"),
        (row(query="q", product_id=7, label="E"), "product_id must be a non-empty string"),
        (row(query="q", product_id="b", label="E", user_id=3), "user_id must be a string"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, bad: str, reason: str) -> None:
    path = write_lines(tmp_path, [row(query="q", product_id="a", label="E"), "", bad])
    with pytest.raises(JudgmentsError) as info:
        load_judgments(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert reason in message


def test_duplicate_pair_is_an_error(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        [
            row(query="q", product_id="a", label="E"),
            row(query="q", product_id="b", label="S"),
            row(query="q", product_id="a", label="I"),
        ],
    )
    with pytest.raises(JudgmentsError, match=r":3: duplicate judgment of 'a'.*first on line 1"):
        load_judgments(path)


def test_duplicate_is_per_user(tmp_path: Path) -> None:
    # The same pair judged by two users is two judgments; twice by one user is an error.
    lines = [
        row(query="q", product_id="a", label="E", user_id="u1"),
        row(query="q", product_id="a", label="I", user_id="u2"),
        row(query="q", product_id="a", label="E"),
    ]
    assert len(load_judgments(write_lines(tmp_path, lines))) == 3
    lines.append(row(query="q", product_id="a", label="S", user_id="u2"))
    with pytest.raises(JudgmentsError, match=r":4: duplicate .* by user 'u2' \(first on line 2\)"):
        load_judgments(write_lines(tmp_path, lines))


def test_missing_file_is_a_judgments_error(tmp_path: Path) -> None:
    with pytest.raises(JudgmentsError, match="cannot read"):
        load_judgments(tmp_path / "nope.jsonl")


def test_bundled_esci_judgments() -> None:
    judgments = load_judgments(esci_us_judgments())
    assert len(judgments) == 4410
    by_query = group_by_query(judgments)
    assert len(by_query) == 100
    assert sum(len(q) for q in by_query.values()) == 4410
    assert {j.label for j in judgments} == {"E", "S", "C", "I"}
    assert all(j.gain == ESCI_GAINS[j.label] for j in judgments if j.label)


def test_bundled_tiny_judgments_fixture() -> None:
    path = Path(__file__).parents[2] / "data" / "tiny_judgments.jsonl"
    judgments = load_judgments(path)
    assert judgments and all(j.gain in ESCI_GAINS.values() for j in judgments)


def test_group_by_query_is_insertion_ordered() -> None:
    judgments = [
        Judgment("q2", "a", 1.0, "E"),
        Judgment("q1", "b", 0.1, "S"),
        Judgment("q2", "c", 0.0, "I"),
    ]
    grouped = group_by_query(judgments)
    assert list(grouped) == ["q2", "q1"]
    assert grouped == {"q2": {"a": 1.0, "c": 0.0}, "q1": {"b": 0.1}}
    assert list(grouped["q2"]) == ["a", "c"]


def test_group_by_query_keeps_highest_gain_across_users() -> None:
    judgments = [
        Judgment("q", "a", 0.1, "S", user_id="u1"),
        Judgment("q", "a", 1.0, "E", user_id="u2"),
        Judgment("q", "a", 0.0, "I", user_id="u3"),
    ]
    assert group_by_query(judgments) == {"q": {"a": 1.0}}


def test_group_by_context_keeps_users_and_sessions_apart() -> None:
    judgments = [
        Judgment("q", "a", 1.0, "E"),
        Judgment("q", "a", 0.0, "I", user_id="u1"),
        Judgment("q", "b", 0.1, "S", user_id="u1", session_id="s1"),
        Judgment("q", "c", 0.1, "S"),
    ]
    assert group_by_context(judgments) == {
        ("q", None, None): {"a": 1.0, "c": 0.1},
        ("q", "u1", None): {"a": 0.0},
        ("q", "u1", "s1"): {"b": 0.1},
    }


QUERIES = [f"query {i}" for i in range(101)]


def test_split_queries_disjoint_and_covering() -> None:
    validation, test = split_queries(QUERIES)
    assert not set(validation) & set(test)
    assert sorted(validation + test) == sorted(QUERIES)
    assert len(validation) == round(0.5 * 101)  # 50 (round half to even)


def test_split_queries_fraction() -> None:
    validation, test = split_queries(QUERIES, validation_fraction=0.2)
    assert (len(validation), len(test)) == (20, 81)
    assert split_queries(QUERIES, validation_fraction=0.0) == ([], QUERIES)
    assert split_queries(QUERIES, validation_fraction=1.0) == (QUERIES, [])
    with pytest.raises(ValueError):
        split_queries(QUERIES, validation_fraction=1.5)


def test_split_queries_deterministic_and_seeded() -> None:
    assert split_queries(QUERIES, seed=3) == split_queries(list(QUERIES), seed=3)
    assert split_queries(QUERIES, seed=3) != split_queries(QUERIES, seed=4)


def test_split_queries_ignores_input_order_and_duplicates() -> None:
    validation, test = split_queries(QUERIES, seed=1)
    shuffled_validation, shuffled_test = split_queries(
        list(reversed(QUERIES)) + QUERIES[:10], seed=1
    )
    assert set(validation) == set(shuffled_validation)
    assert set(test) == set(shuffled_test)
    # outputs keep the input's first-seen order
    assert validation == [q for q in QUERIES if q in set(validation)]
    assert shuffled_validation == [q for q in reversed(QUERIES) if q in set(validation)]


def test_split_queries_is_not_trivially_a_prefix() -> None:
    validation, _ = split_queries(QUERIES)
    assert validation != QUERIES[: len(validation)]


def test_gzipped_judgments_load_like_plain_ones(tmp_path: Path) -> None:
    import gzip

    lines = [row(query="q", product_id="a", label="E"), row(query="q", product_id="b", label=1.5)]
    plain = write_lines(tmp_path, lines)
    zipped = tmp_path / "judgments.jsonl.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_judgments(zipped) == load_judgments(plain)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:-10])  # truncated download
    with pytest.raises(JudgmentsError, match="cannot read judgments"):
        load_judgments(broken)
