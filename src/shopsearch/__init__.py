"""shopsearch: context-aware e-commerce product search.

>>> from shopsearch import SearchPipeline, Filters                 # doctest: +SKIP
>>> pipeline = SearchPipeline.open("indexes/esci-us")              # doctest: +SKIP
>>> result = pipeline.search("ugg slippers women", k=5, filters=Filters(rating_min=4))
>>> [(hit.product_id, hit.scores) for hit in result.hits]          # doctest: +SKIP
"""

from __future__ import annotations

# First: loads ONNX Runtime before anything can load usearch (see shopsearch/native.py).
from shopsearch import native  # noqa: F401, I001
from shopsearch.catalog.loaders import LoadReport, load_catalog
from shopsearch.catalog.schema import Product
from shopsearch.index.config import FusionConfig, IndexConfig
from shopsearch.index.filters import Filters
from shopsearch.models.encoders import EncoderConfig
from shopsearch.pipeline import Hit, SearchPipeline, SearchResult

__version__ = "0.1.0"
__all__ = [
    "EncoderConfig",
    "Filters",
    "FusionConfig",
    "Hit",
    "IndexConfig",
    "LoadReport",
    "Product",
    "SearchPipeline",
    "SearchResult",
    "load_catalog",
]
