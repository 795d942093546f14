"""Catalog: the product schema, file loaders and the embedded store."""
