"""Machine facts: the int8 kernel family that labels parity measurements."""

from __future__ import annotations

import pytest

from shopsearch import system


@pytest.mark.parametrize(
    ("machine", "flags", "family"),
    [
        ("x86_64", {"avx2", "fma"}, "x86-avx2"),
        ("x86_64", {"avx2", "avx512f", "avx512bw"}, "x86-avx512"),
        ("x86_64", {"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "x86-avx512-vnni"),
        ("x86_64", {"avx2", "avx_vnni"}, "x86-avx-vnni"),
        ("x86_64", {"avx2", "avx512_vnni", "amx_int8"}, "x86-amx"),
        ("x86_64", {"sse4_2"}, "x86_64-baseline"),
        ("aarch64", {"asimd", "asimddp"}, "arm64-dot"),
        ("aarch64", {"asimd"}, "arm64"),
    ],
)
def test_int8_kernel_family(monkeypatch, machine, flags, family):
    monkeypatch.setattr(system, "cpu_features", lambda: frozenset(flags))
    monkeypatch.setattr(system.platform, "machine", lambda: machine)
    assert system.int8_kernel_family() == family


def test_this_machine_is_described():
    assert system.cpu_model()
    assert system.cpu_features() <= set(system.RELEVANT_FLAGS)
    versions = system.library_versions()
    assert versions["python"] and versions["onnxruntime"] != "-"
