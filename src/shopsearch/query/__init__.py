"""Query understanding: the rules that turn what a shopper typed into a parsed query.

Each module holds one family of rules and works on plain text (no index needed):

* :mod:`~shopsearch.query.clean` -- invisible characters, blank queries;
* :mod:`~shopsearch.query.operators` -- ``-word`` exclusions and ``"quoted phrases"``;
* :mod:`~shopsearch.query.negation` -- "without X", "no X", "not X", "X not included";
* :mod:`~shopsearch.query.price` -- "under $50", "$20-$50", "over 100";
* :mod:`~shopsearch.query.units` -- "200 mg" = "200mg", "32-ounce" = "32 oz", "pack of 3";
* :mod:`~shopsearch.query.audience` -- men / women / kids / toddler / baby / boys / girls.

:class:`~shopsearch.query.parse.QueryParser` applies them in order and returns a
:class:`~shopsearch.query.parsed.ParsedQuery`.
"""

from shopsearch.query.parse import QueryParser
from shopsearch.query.parsed import ParsedQuery, PriceConstraint

__all__ = ["ParsedQuery", "PriceConstraint", "QueryParser"]
