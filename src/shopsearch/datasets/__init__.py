"""Sample data bundled with shopsearch.

The ESCI-US sample (6,764 products, 100 queries with 4,410 graded judgments) comes from the
Amazon Shopping Queries Dataset (Reddy et al., 2022, arXiv:2206.06588), Apache-2.0, as
redistributed in the OpenSearch search-relevance sample data. See ``esci_us/README.md``.
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def esci_us_products() -> Path:
    """Path of the bundled ESCI-US product catalog (JSONL.gz)."""
    return _ROOT / "esci_us" / "products.jsonl.gz"


def esci_us_judgments() -> Path:
    """Path of the bundled ESCI-US graded judgments (JSONL)."""
    return _ROOT / "esci_us" / "judgments.jsonl"
