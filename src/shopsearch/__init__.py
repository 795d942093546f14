"""shopsearch: context-aware e-commerce product search.

>>> from shopsearch import SearchIndex            # doctest: +SKIP
>>> index = SearchIndex.open("indexes/esci")     # doctest: +SKIP
>>> index.search("ugg slippers women", k=5).hits # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"
