"""A catalog above the exact/ANN threshold, made from the bundled ESCI-US sample.

Real catalogs list the same product in several variants (sizes, colours, pack counts);
:func:`write_variant_catalog` adds such variants of the 6,764 sample products until the
catalog has ``total`` products. Every original product keeps its id, so the bundled
judgments still apply.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from shopsearch.datasets import esci_us_products

SIZES = ("Small", "Medium", "Large", "X-Large", "8 oz", "16 oz", "32 oz", "1/2 inch", "3/4 inch")
COLOURS = ("Black", "White", "Navy Blue", "Grey", "Red", "Forest Green", "Beige", "Pink")
PACKS = ("Pack of 2", "Pack of 3", "6 Pack", "12 Count", "Set of 4")


def _variant(row: dict, n: int) -> dict:
    size, colour, pack = SIZES[n % len(SIZES)], COLOURS[n % len(COLOURS)], PACKS[n % len(PACKS)]
    kind = n % 3
    suffix = (f", {size}", f" - {colour}", f" ({pack})")[kind]
    variant = {**row, "asin": f"{row['asin']}-v{n}", "title": row["title"] + suffix}
    if kind == 1:
        variant["color"] = colour
    if kind == 2 and row.get("price") is not None:
        variant["price"] = round(float(row["price"]) * (2 + n % 3) * 0.9, 2)
    return variant


def write_variant_catalog(total: int, path: Path) -> Path:
    """Write ``total`` products (the sample, then variants of it) to ``path`` (.jsonl.gz)."""
    with gzip.open(esci_us_products(), "rt", encoding="utf-8") as f:
        originals = [json.loads(line) for line in f if line.strip()]
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for i in range(total):
            row = originals[i] if i < len(originals) else None
            if row is None:
                base = originals[i % len(originals)]
                row = _variant(base, i // len(originals))
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
