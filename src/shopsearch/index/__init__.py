"""Retrieval indexes over catalog rows.

``lexical`` (BM25Index: incremental weighted-field BM25), ``vector`` (VectorIndex),
``filters`` (attribute filter columns), ``fusion`` (rank fusion) and ``snapshot`` (the
row-aligned set of them for one catalog state). Import from the submodules, e.g.
``from shopsearch.index.lexical import BM25Index``.
"""
