"""The real command line, each command in a fresh process, on a catalog above the exact/ANN
threshold (25,000 products: the HNSW graph is built, saved and loaded).

Regression test of a crash no in-process test could see: with usearch's graph loaded first,
``import onnxruntime`` died with SIGSEGV (both ship colliding libstdc++ symbols; see
shopsearch/native.py). Each command runs as a user's does: ``python -m shopsearch ...`` in a
new interpreter, so the process imports exactly what the command imports, in its order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
from catalog_support import write_variant_catalog
from serve_support import ServerProcess, auth

from shopsearch.datasets import esci_us_judgments
from shopsearch.index.vector import VectorIndexConfig

PRODUCTS = 25_000
assert PRODUCTS > VectorIndexConfig().exact_below  # above the exact/ANN threshold


def shopsearch(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "shopsearch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode != -signal.SIGSEGV, f"shopsearch {args[0]} crashed: {done.stderr}"
    assert done.returncode == 0, f"shopsearch {args[0]} failed: {done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def large_index(tmp_path_factory):
    work = tmp_path_factory.mktemp("large")
    catalog = write_variant_catalog(PRODUCTS, work / "catalog.jsonl.gz")
    shopsearch("index", str(catalog), "--out", str(work / "index"))
    return work / "index"


def test_info_loads_the_ann_graph_and_reports_backends(large_index):
    info = json.loads(shopsearch("info", str(large_index), "--json").stdout)
    assert info["products"] == PRODUCTS
    assert info["dense_search"] == "ann (HNSW)"
    assert (large_index / "snapshots" / info["snapshot"] / "vectors" / "graph.usearch").is_file()
    encoder = info["backends"]["encoder"]
    assert encoder["requested"] == "onnx-int8" and encoder["backend"].startswith("onnx-")
    assert info["backends_recorded"]["encoder"]["backend"] == encoder["backend"]


def test_search_finds_products_through_the_graph(large_index):
    results = json.loads(
        shopsearch(
            "search", str(large_index), "ugg slippers women", "保温杯 water bottle", "--json"
        ).stdout
    )
    assert [r["query"] for r in results] == ["ugg slippers women", "保温杯 water bottle"]
    assert all(len(r["hits"]) == 10 for r in results)
    assert any("ugg" in h["product"]["title"].lower() for h in results[0]["hits"])
    dense_only = json.loads(
        shopsearch(
            "search", str(large_index), "ugg slippers", "--pipeline", "dense", "--json"
        ).stdout
    )
    assert len(dense_only["hits"]) == 10 and all("dense" in h["scores"] for h in dense_only["hits"])


def test_eval_runs_every_pipeline(large_index):
    report = json.loads(
        shopsearch(
            "eval",
            str(large_index),
            "--judgments",
            str(esci_us_judgments()),
            "--protocol",
            "retrieve",
            "--pipeline",
            "all",
            "--json",
        ).stdout
    )
    ndcg = {name: summary["ndcg@10"] for name, summary in report["pipelines"].items()}
    assert set(ndcg) >= {"random", "bm25", "dense", "hybrid"}
    assert min(ndcg["bm25"], ndcg["dense"], ndcg["hybrid"]) > 5 * ndcg["random"]


def test_serve_answers_a_search(large_index, tmp_path):
    created = shopsearch(
        "keys", "create", str(large_index), "--name", "large", "--scopes", "search"
    ).stdout
    key = created.strip()
    server = ServerProcess(large_index, tmp_path / "server.log")
    try:
        server.wait_ready(timeout=180)
        response = httpx.post(
            f"{server.url}/v1/search",
            json={"query": "ugg slippers women", "k": 5},
            headers=auth(key),
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["hits"]) == 5
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        server.stop()
