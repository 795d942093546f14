"""An index snapshot: row-aligned lexical, vector and filter indexes over one catalog state.

Row ``i`` of the BM25 index, of the vector index and of the filter columns is the same
product, ``row_ids[i]``. An upsert tombstones the product's old row and appends a new one;
a delete tombstones it; :meth:`IndexSnapshot.compact` drops tombstones when they pile up.
Only changed products are tokenized and embedded: nothing is rebuilt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.index.config import IndexConfig
from shopsearch.index.filters import FilterColumns
from shopsearch.index.lexical import BM25Index
from shopsearch.index.vector import VectorIndex
from shopsearch.models.encoders import Encoder, product_text
from shopsearch.models.multilingual import DIM as MULTILINGUAL_DIM
from shopsearch.models.multilingual import load_multilingual
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.text.vocabulary import Vocabulary

COMPACT_WHEN_DEAD_FRACTION = 0.25


def lexical_fields(product: Product) -> dict[str, str]:
    """The text fields BM25 indexes, keyed by the names used in field weights."""
    return {
        "title": product.title,
        "brand": product.brand,
        "color": product.color,
        "category": product.category_path,
        "bullet_points": product.bullet_points,
        "description": product.description,
    }


class IndexSnapshot:
    """BM25 + vectors + filter columns + the row -> product id table, and the catalog's
    words (for spelling correction; ``None`` when loaded from an index written before
    they were kept: :meth:`IndexDirectory.load_snapshot` counts them from the catalog)."""

    def __init__(
        self,
        config: IndexConfig,
        bm25: BM25Index,
        vectors: VectorIndex,
        columns: FilterColumns,
        row_ids: list[str],
        vocabulary: Vocabulary | None = None,
        mvectors: VectorIndex | None = None,
    ) -> None:
        self.config = config
        self.bm25 = bm25
        self.vectors = vectors
        self.mvectors = mvectors  # multilingual vectors (``multilingual.enabled``), row-aligned
        self.columns = columns
        self.row_ids = row_ids
        self.vocabulary = vocabulary
        self.name: str | None = None  # the directory's name for it, once saved or loaded
        self.id_to_row = {pid: row for row, pid in enumerate(row_ids) if bm25.live_mask[row]}

    @property
    def live_mask(self) -> np.ndarray:
        return self.bm25.live_mask

    def __len__(self) -> int:
        return len(self.id_to_row)

    @classmethod
    def empty(cls, config: IndexConfig, dim: int) -> IndexSnapshot:
        return cls(
            config,
            BM25Index(config.bm25),
            VectorIndex(dim, config.vector),
            FilterColumns(),
            [],
            Vocabulary(),
            VectorIndex(MULTILINGUAL_DIM, config.vector) if config.multilingual.enabled else None,
        )

    def apply(
        self,
        upserts: Sequence[Product],
        deletes: Sequence[str],
        encoder: Encoder,
        progress: Progress = NULL_PROGRESS,
        replaced: Sequence[Product] = (),
    ) -> None:
        """Add or replace ``upserts`` and remove ``deletes`` (unknown ids are ignored);
        ``replaced``: the stored products they replace or delete (their words are
        subtracted from the vocabulary)."""
        stale = [self.id_to_row[p.id] for p in upserts if p.id in self.id_to_row]
        stale += [self.id_to_row[i] for i in deletes if i in self.id_to_row]
        if upserts:
            with progress.stage("Encoding products", len(upserts)) as advance:
                fields = self.config.encoder.product_fields
                embeddings = encoder.encode_products(
                    [product_text(p, fields) for p in upserts], progress=advance
                )
            if self.mvectors is not None:
                with progress.stage("Multilingual vectors", len(upserts)) as advance:
                    fields = self.config.multilingual.product_fields
                    multilingual = load_multilingual().encode_products(
                        [product_text(p, fields) for p in upserts], progress=advance
                    )
            with progress.stage("Lexical index", len(upserts)) as advance:
                rows = self.bm25.add([lexical_fields(p) for p in upserts])
                advance(len(upserts))
        if stale:
            stale_rows = np.asarray(sorted(set(stale)), dtype=np.int64)
            self.bm25.delete(stale_rows)
            self.vectors.delete(stale_rows)
            if self.mvectors is not None:
                self.mvectors.delete(stale_rows)
            for row in stale_rows.tolist():
                del self.id_to_row[self.row_ids[row]]
        if upserts:
            vector_rows = self.vectors.add(embeddings)
            if not np.array_equal(rows, vector_rows):  # pragma: no cover - invariant
                raise RuntimeError("lexical and vector rows diverged")
            if self.mvectors is not None:
                if not np.array_equal(rows, self.mvectors.add(multilingual)):  # pragma: no cover
                    raise RuntimeError("lexical and multilingual vector rows diverged")
            self.columns.add(upserts)
            for product, row in zip(upserts, rows.tolist(), strict=True):
                self.row_ids.append(product.id)
                self.id_to_row[product.id] = row
        if self.vocabulary is not None:
            self.vocabulary.remove(replaced)
            self.vocabulary.add(upserts)
        dead = self.bm25.n_rows - self.bm25.n_live
        if self.bm25.n_rows and dead / self.bm25.n_rows > COMPACT_WHEN_DEAD_FRACTION:
            self.compact()

    def compact(self) -> None:
        mapping = self.bm25.compact()
        vector_mapping = self.vectors.compact()
        if not np.array_equal(mapping, vector_mapping):  # pragma: no cover - invariant
            raise RuntimeError("lexical and vector compaction diverged")
        if self.mvectors is not None and not np.array_equal(mapping, self.mvectors.compact()):
            raise RuntimeError("lexical and multilingual compaction diverged")  # pragma: no cover
        self.columns.compact(mapping)
        kept = zip(self.row_ids, mapping.tolist(), strict=True)
        self.row_ids = [pid for pid, new in kept if new >= 0]
        self.id_to_row = {pid: row for row, pid in enumerate(self.row_ids)}

    def save(self, directory: Path) -> None:
        """Write every file into ``directory`` (which must be new) and fsync them."""
        directory.mkdir(parents=True)
        self.config.save(directory / "config.json")
        self.bm25.save(directory / "lexical")
        self.vectors.save(directory / "vectors")
        if self.mvectors is not None:
            self.mvectors.save(directory / "mvectors")
        self.columns.save(directory)
        (directory / "rows.json").write_text(json.dumps(self.row_ids), encoding="utf-8")
        if self.vocabulary is not None:
            self.vocabulary.save(directory)
        _fsync_tree(directory)

    @classmethod
    def load(cls, directory: Path) -> IndexSnapshot:
        return cls(
            IndexConfig.load(directory / "config.json"),
            BM25Index.load(directory / "lexical"),
            VectorIndex.load(directory / "vectors"),
            FilterColumns.load(directory),
            json.loads((directory / "rows.json").read_text(encoding="utf-8")),
            Vocabulary.load(directory),
            VectorIndex.load(directory / "mvectors") if (directory / "mvectors").is_dir() else None,
        )


def _fsync_tree(directory: Path) -> None:
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
