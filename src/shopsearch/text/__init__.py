"""Text processing for retrieval: normalization and tokenizers.

:mod:`shopsearch.text.normalize` holds the one set of normalisation rules (``key`` for
matching and grouping, ``fold`` for the tokenizer); :mod:`shopsearch.text.tokenize` the
BM25 tokenizer.

>>> from shopsearch.text import Tokenizer, key
>>> Tokenizer().tokenize("Running Shoes for Women")
['run', 'shoe', 'women']
>>> key("Ugg  SLIPPERS")
'ugg slippers'
"""

from __future__ import annotations

from shopsearch.text.normalize import collapse_spaces, fold, key, strip_accents
from shopsearch.text.tokenize import ENGLISH_STOPWORDS, Tokenizer, TokenizerConfig

__all__ = [
    "ENGLISH_STOPWORDS",
    "Tokenizer",
    "TokenizerConfig",
    "collapse_spaces",
    "fold",
    "key",
    "strip_accents",
]
