"""Paths of the small test fixtures (importable from any test module)."""

from pathlib import Path

DATA = Path(__file__).parent / "data"
TINY_CATALOG = DATA / "tiny_catalog.jsonl"
TINY_JUDGMENTS = DATA / "tiny_judgments.jsonl"
