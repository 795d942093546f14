"""Native libraries in a fresh process: the import order that crashed, and ``doctor``.

usearch's wheels export a static libstdc++ whose unique symbols, loaded first, crash ONNX
Runtime's initialisation (shopsearch/native.py). Each check runs in a new interpreter, the
only place where import order is observable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from shopsearch.system import RELEVANT_FLAGS


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_shopsearch_loads_onnxruntime_before_usearch():
    done = python(
        "import shopsearch, sys\n"
        "assert 'onnxruntime' in sys.modules and 'usearch.compiled' not in sys.modules\n"
        "import usearch.index, onnxruntime\n"  # the order that crashed, now harmless
        "from shopsearch.index.vector import VectorIndex, VectorIndexConfig\n"
        "import numpy as np\n"
        "index = VectorIndex(8, VectorIndexConfig(exact_below=0))\n"
        "rng = np.random.default_rng(0)\n"
        "vectors = rng.normal(size=(500, 8)).astype('float32')\n"
        "vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)\n"
        "index.add(vectors)\n"
        "rows, _ = index.search(vectors[7], k=3)\n"
        "assert index.ann_built and rows[0] == 7, rows\n"
        "print('ok')"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_usearch_imported_first_gives_a_clear_error_instead_of_a_crash():
    done = python(
        "import usearch.index\nfrom shopsearch.native import onnxruntime\nonnxruntime()\n"
    )
    assert done.returncode != -signal.SIGSEGV
    assert done.returncode == 1
    assert "NativeLibraryError" in done.stderr and "Import shopsearch" in done.stderr


def test_doctor_reports_the_machine_and_the_backends():
    done = subprocess.run(
        [sys.executable, "-m", "shopsearch", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["cpu_model"] and report["cpu_count"] >= 1
    assert set(report["cpu_features"]) <= set(RELEVANT_FLAGS)
    assert report["int8_kernels"]
    for library in ("onnxruntime", "usearch", "numpy", "torch"):
        assert report["libraries"][library] not in ("", "-")
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert report["native_import_order"].startswith("ok")
    encoder = report["backends"]["encoder (default)"]
    assert encoder["requested"] == "onnx-int8"
    assert encoder["backend"] in ("onnx-int8", "onnx-fp32", "torch")
    assert encoder["parity"] and encoder["parity"][0]["kernels"] == report["int8_kernels"]
