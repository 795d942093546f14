"""Graded relevance judgments: loading, grouping and query splits.

A judgments file is JSON Lines, one judgment per line::

    {"query": "ugg slippers women", "product_id": "B089NYDYJT", "label": "E"}
    {"query": "ugg slippers women", "product_id": "B0026FBJWU", "label": 0.25, "user_id": "u1"}

``label`` is an ESCI letter (Exact, Substitute, Complement, Irrelevant; any case), mapped
through :data:`ESCI_GAINS`, or a number (or numeric string) used directly as the gain.
``user_id`` and ``session_id`` are optional.

>>> from shopsearch.datasets import esci_us_judgments
>>> judgments = load_judgments(esci_us_judgments())
>>> len(judgments), len(group_by_query(judgments))
(4410, 100)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopsearch.errors import JudgmentsError

__all__ = [
    "ESCI_GAINS",
    "ContextKey",
    "Judgment",
    "group_by_context",
    "group_by_query",
    "load_judgments",
    "split_queries",
]

#: Gains of the ESCI labels, as in the KDD Cup 2022 (Amazon ESCI) task 1 evaluation.
ESCI_GAINS: dict[str, float] = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}

#: ``(query, user_id, session_id)``: one evaluation "query" in its user/session context.
ContextKey = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class Judgment:
    """One graded judgment: how relevant ``product_id`` is to ``query`` (``gain`` >= 0).

    ``label`` keeps the ESCI letter (upper case) when the file gave one, else ``None``.
    """

    query: str
    product_id: str
    gain: float
    label: str | None
    user_id: str | None = None
    session_id: str | None = None


def _parse_label(value: Any) -> tuple[float, str | None]:
    """Gain and ESCI label of a raw ``label`` value; raises ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError(f"label must be one of E/S/C/I or a number, got {value!r}")
    if isinstance(value, str):
        letter = value.strip().upper()
        if letter in ESCI_GAINS:
            return ESCI_GAINS[letter], letter
        try:
            gain = float(value)
        except ValueError:
            raise ValueError(
                f"unknown label {value!r} (expected one of E/S/C/I or a number)"
            ) from None
    elif isinstance(value, int | float):
        gain = float(value)
    else:
        raise ValueError(f"label must be one of E/S/C/I or a number, got {value!r}")
    if not math.isfinite(gain):
        raise ValueError(f"gain must be finite, got {value!r}")
    if gain < 0:
        raise ValueError(f"gain must be >= 0, got {value!r}")
    return gain, None


def _optional_str(row: dict[str, Any], field: str) -> str | None:
    value = row.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string or null, got {value!r}")
    return value


def _required_str(row: dict[str, Any], field: str) -> str:
    if field not in row or row[field] is None:
        raise ValueError(f"missing field {field!r}")
    value = row[field]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    return value


def _parse_row(row: Any) -> Judgment:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    query = _required_str(row, "query")
    product_id = _required_str(row, "product_id")
    if "label" not in row or row["label"] is None:
        raise ValueError("missing field 'label'")
    gain, label = _parse_label(row["label"])
    return Judgment(
        query=query,
        product_id=product_id,
        gain=gain,
        label=label,
        user_id=_optional_str(row, "user_id"),
        session_id=_optional_str(row, "session_id"),
    )


def load_judgments(path: str | Path) -> list[Judgment]:
    """Read a JSONL judgments file (``.jsonl`` or gzipped ``.jsonl.gz``); blank lines are
    skipped.

    Raises :class:`JudgmentsError` with a ``path:line: reason`` message for malformed JSON,
    a missing ``query``/``product_id``/``label``, an unknown label, a negative or non-finite
    gain, or a second judgment of the same ``(query, user_id, product_id)``.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise JudgmentsError(f"{path}: cannot read judgments: {exc}") from exc

    judgments: list[Judgment] = []
    first_seen: dict[tuple[str, str | None, str], int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JudgmentsError(f"{path}:{lineno}: malformed JSON: {exc.msg}") from exc
        try:
            judgment = _parse_row(row)
        except ValueError as exc:
            raise JudgmentsError(f"{path}:{lineno}: {exc}") from None
        key = (judgment.query, judgment.user_id, judgment.product_id)
        if key in first_seen:
            who = "" if judgment.user_id is None else f" by user {judgment.user_id!r}"
            raise JudgmentsError(
                f"{path}:{lineno}: duplicate judgment of {judgment.product_id!r} for query "
                f"{judgment.query!r}{who} (first on line {first_seen[key]})"
            )
        first_seen[key] = lineno
        judgments.append(judgment)
    return judgments


def group_by_query(judgments: Iterable[Judgment]) -> dict[str, dict[str, float]]:
    """``query -> product_id -> gain``, in first-seen order, ignoring user and session.

    When several users judged the same pair the highest gain is kept; use
    :func:`group_by_context` to keep users apart.
    """
    grouped: dict[str, dict[str, float]] = {}
    for j in judgments:
        qrels = grouped.setdefault(j.query, {})
        qrels[j.product_id] = max(j.gain, qrels.get(j.product_id, j.gain))
    return grouped


def group_by_context(judgments: Iterable[Judgment]) -> dict[ContextKey, dict[str, float]]:
    """``(query, user_id, session_id) -> product_id -> gain``, in first-seen order.

    Each key is one evaluation "query" for :func:`shopsearch.evaluation.evaluate`. Without
    users or sessions this is :func:`group_by_query` keyed by ``(query, None, None)``.
    """
    grouped: dict[ContextKey, dict[str, float]] = {}
    for j in judgments:
        qrels = grouped.setdefault((j.query, j.user_id, j.session_id), {})
        qrels[j.product_id] = max(j.gain, qrels.get(j.product_id, j.gain))
    return grouped


def _split_rank(seed: int, query: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{query}".encode()).digest()


def split_queries(
    queries: Iterable[str], *, validation_fraction: float = 0.5, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split distinct queries into ``(validation, test)`` lists, deterministically.

    Queries are ordered by a SHA-256 hash of ``seed`` and the query text, and the first
    ``round(validation_fraction * n)`` go to validation. The split therefore depends only on
    the set of queries and the seed (not on their order, the Python version or
    ``PYTHONHASHSEED``); both lists keep the input's first-seen order. Duplicates are
    collapsed, and no query lands in both lists.
    """
    if not 0.0 <= validation_fraction <= 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1], got {validation_fraction}")
    distinct = list(dict.fromkeys(queries))
    n_validation = round(validation_fraction * len(distinct))
    shuffled = sorted(distinct, key=lambda q: _split_rank(seed, q))
    in_validation = set(shuffled[:n_validation])
    validation = [q for q in distinct if q in in_validation]
    test = [q for q in distinct if q not in in_validation]
    return validation, test
