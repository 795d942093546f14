"""The first stage: query analysis. It turns the raw text into a
:class:`~shopsearch.query.ParsedQuery` (:mod:`shopsearch.query`): the text later stages
match, negated phrases, ``-word`` exclusions, quoted phrases, a price constraint and the
audience. Disabled (``analysis.enabled = false``), the query is matched as typed; a query
with nothing searchable in it is an error either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from shopsearch.index.config import AnalysisConfig
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.query import ParsedQuery, QueryParser
from shopsearch.query.clean import check_searchable

__all__ = ["ParsedQuery", "QueryAnalyzer"]


class QueryAnalyzer:
    """Turns the raw query into a :class:`ParsedQuery`."""

    name = "analyze"

    def __init__(self, config: AnalysisConfig | None = None) -> None:
        self.config = config if config is not None else AnalysisConfig()
        self._parser = QueryParser(
            negation_words=self.config.negation_words,
            spelling=self.config.spelling,
            typo_min_letters=self.config.typo_min_letters,
        )

    def analyze(
        self, raw: str, relax: Iterable[str] = (), snapshot: IndexSnapshot | None = None
    ) -> ParsedQuery:
        """``snapshot``: the index snapshot the search reads (its vocabulary and BM25 index
        guide spelling correction)."""
        if not self.config.enabled:
            check_searchable(raw)
            return ParsedQuery(raw=raw, text=raw)
        if snapshot is None:
            return self._parser.parse(raw, relax)
        bm25 = snapshot.bm25

        def together(words: Sequence[str]) -> int:
            return int(np.count_nonzero(bm25.rows_with_all(" ".join(words))))

        return self._parser.parse(raw, relax, snapshot.vocabulary, together)
