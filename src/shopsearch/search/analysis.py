"""The first stage: query analysis. For now a pass-through that keeps the text as typed;
spelling, negation, units and query classification will fill :class:`ParsedQuery`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ParsedQuery", "QueryAnalyzer"]


@dataclass(frozen=True)
class ParsedQuery:
    """What the later stages match: ``text`` (what retrievers and rerankers read) and the
    query as the shopper typed it (``raw``)."""

    raw: str
    text: str


class QueryAnalyzer:
    """Turns the raw query into a :class:`ParsedQuery` (pass-through)."""

    name = "analyze"

    def analyze(self, raw: str) -> ParsedQuery:
        return ParsedQuery(raw=raw, text=raw)
