"""The first stage: query analysis. It turns the raw text into a
:class:`~shopsearch.query.ParsedQuery` (:mod:`shopsearch.query`): the text later stages
match, negated phrases, ``-word`` exclusions, quoted phrases, a price constraint and the
audience. Disabled (``analysis.enabled = false``), the query is matched as typed; a query
with nothing searchable in it is an error either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from shopsearch.index.config import AnalysisConfig
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.query import ParsedQuery, QueryParser
from shopsearch.query.clean import check_searchable
from shopsearch.query.language import detect
from shopsearch.query.synonyms import SynonymFile

__all__ = ["SYNONYMS", "ParsedQuery", "QueryAnalyzer"]

SYNONYMS = "synonyms.txt"  # an index's own synonym rules, in its directory


class QueryAnalyzer:
    """Turns the raw query into a :class:`ParsedQuery`."""

    name = "analyze"

    def __init__(
        self, config: AnalysisConfig | None = None, synonyms_path: Path | None = None
    ) -> None:
        """``synonyms_path``: the index's synonym rules (``DIR/synonyms.txt``), re-read
        when the file changes."""
        self.config = config if config is not None else AnalysisConfig()
        self.synonyms = SynonymFile(synonyms_path)
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
            return ParsedQuery(raw=raw, text=raw, language=detect(raw))
        if snapshot is None:
            return self._parser.parse(raw, relax, synonyms=self.synonyms.rules())
        bm25 = snapshot.bm25

        def together(words: Sequence[str]) -> int:
            return int(np.count_nonzero(bm25.rows_with_all(" ".join(words))))

        return self._parser.parse(raw, relax, snapshot.vocabulary, together, self.synonyms.rules())
