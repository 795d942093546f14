"""Text processing for retrieval: normalization and tokenizers.

>>> from shopsearch.text import Tokenizer
>>> Tokenizer().tokenize("Running Shoes for Women")
['run', 'shoe', 'women']
"""

from __future__ import annotations

from shopsearch.text.tokenize import ENGLISH_STOPWORDS, Tokenizer, TokenizerConfig

__all__ = ["ENGLISH_STOPWORDS", "Tokenizer", "TokenizerConfig"]
