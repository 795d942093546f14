"""The models later stages need, loaded on first use and once: the cross-encoder (on the
backend whose parity holds on this CPU), the learning-to-rank context ranker, and the
event store it reads. Also what `info` and `doctor` report about them."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.errors import InvalidQueryError
from shopsearch.index.config import RerankerConfig
from shopsearch.models.encoders import Encoder

__all__ = ["BACKENDS_FILE", "LTR_DIR", "StageModels"]

#: Where `shopsearch context train` saves the learning-to-rank model inside an index dir.
LTR_DIR = "ltr"
#: Where `shopsearch index` / `refresh` record the backends the models run on, and why.
BACKENDS_FILE = "backends.json"


class StageModels:
    """Lazily loaded models of one index directory, shared by its pipelines' stages."""

    def __init__(
        self,
        path: Path,
        reranker_config: RerankerConfig,
        *,
        documents: Callable[[Sequence[str]], Mapping[str, Product]],
        vectors: Callable[[Sequence[str]], np.ndarray | None],
    ) -> None:
        self.path = Path(path)
        self.reranker_config = reranker_config
        self.documents = documents
        self._vectors = vectors
        self._reranker: tuple[Any, tuple[str, ...]] | None = None
        self.reranker_choice: Any = None  # its BackendChoice, once loaded
        self._context: Any = None
        self._fusion: Any = None
        self._events: Any = None
        self._lock = threading.RLock()  # each model is loaded once

    def close(self) -> None:
        if self._events is not None:
            self._events.close()

    # the cross-encoder
    @property
    def has_reranker(self) -> bool:
        return bool(self.reranker_config.path)

    def reranker(self) -> tuple[Any, tuple[str, ...]]:
        """The cross-encoder and the product fields it reads (ONNX forms exported once into
        its run directory)."""
        if self._reranker is None:
            with self._lock:
                if self._reranker is None:
                    from shopsearch.models.onnx_reranker import load_run_reranker_backend

                    settings = self.reranker_config
                    reranker, fields, choice = load_run_reranker_backend(
                        Path(settings.path),
                        settings.backend,
                        int8_min_pearson=settings.int8_min_pearson,
                    )
                    self.reranker_choice = choice
                    self._reranker = (reranker, fields)
        return self._reranker

    # learned fusion
    @property
    def has_fusion_model(self) -> bool:
        from shopsearch.search.fusion_model import FUSION_DIR, MODEL_FILE

        return (self.path / FUSION_DIR / MODEL_FILE).is_file()

    def fusion_model(self) -> Any:
        """The learned fusion model of ``DIR/fusion`` (loaded once per generation)."""
        if self._fusion is None:
            with self._lock:
                if self._fusion is None:
                    from shopsearch.search.fusion_model import FUSION_DIR, FusionModel

                    self._fusion = FusionModel.load(self.path / FUSION_DIR)
        return self._fusion

    # the personal stage
    @property
    def has_personal_model(self) -> bool:
        return (self.path / LTR_DIR / "model.txt").is_file()

    @property
    def events(self) -> Any:
        """The index's event store (``DIR/events.sqlite``)."""
        if self._events is None:
            from shopsearch.events.store import EventStore

            with self._lock:
                if self._events is None:
                    self._events = EventStore.open(self.path)
        return self._events

    def context_ranker(self) -> Any:
        """The personal stage's ranker: the LTR model and the event store."""
        if self._context is None:
            with self._lock:
                if self._context is None:
                    if not self.has_personal_model:
                        raise InvalidQueryError(
                            "the personal pipeline needs a learning-to-rank model: "
                            "shopsearch context train DIR"
                        )
                    from shopsearch.context.ltr import LTRModel
                    from shopsearch.context.ranker import ContextRanker

                    self._context = ContextRanker(
                        LTRModel.load(self.path / LTR_DIR),
                        events=self.events,
                        products=self.documents,
                        vectors=self._vectors,
                    )
        return self._context

    # what runs where
    def backends(self, encoder: Encoder) -> dict[str, Any]:
        """The backend each model runs on in this process, and the parity that chose it
        (the reranker once loaded)."""
        choice = getattr(encoder, "backend_choice", None)
        out: dict[str, Any] = {
            "encoder": (
                choice.to_dict()
                if choice is not None
                else {"backend": getattr(encoder, "backend", type(encoder).__name__)}
            )
        }
        if self.reranker_choice is not None:
            out["reranker"] = self.reranker_choice.to_dict()
        return out

    def record_backends(self, encoder: Encoder) -> Path:
        """Write :meth:`backends` (and this machine's CPU) to ``DIR/backends.json``."""
        from shopsearch.system import cpu_model, int8_kernel_family

        record = {"cpu": cpu_model(), "kernels": int8_kernel_family(), **self.backends(encoder)}
        path = self.path / BACKENDS_FILE
        tmp = path.with_name(f".{BACKENDS_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        os.replace(tmp, path)
        return path
