"""Pipelines written as text: parsing, the built-ins, errors, and the index configuration."""

from __future__ import annotations

import pytest

from shopsearch.errors import InvalidQueryError
from shopsearch.index.config import IndexConfig, PipelinesConfig
from shopsearch.search.spec import BUILTIN, Step, parse


def test_the_built_ins_parse_into_their_stages():
    specs = {name: parse(name, text) for name, text in BUILTIN.items()}
    assert specs["bm25"].retrievers == ("bm25",) and specs["bm25"].fusion is None
    assert specs["hybrid"].retrievers == ("bm25", "dense")
    assert specs["hybrid"].fusion == Step("fuse")
    assert [s.name for s in specs["rerank"].stages] == ["cross_encoder"]
    assert specs["personal"].stages == (Step("personal", {"top": 50, "at_least_k": True}),)
    assert specs["rerank"].stage_names == (
        "analyze",
        "bm25",
        "dense",
        "fuse",
        "cross_encoder",
        "shape",
    )


def test_a_composition_extends_a_built_in():
    spec = parse("rp", "hybrid -> cross_encoder(top=50) -> personal(top=100)")
    assert spec.retrievers == ("bm25", "dense") and spec.fusion == Step("fuse")
    assert spec.stages == (Step("cross_encoder", {"top": 50}), Step("personal", {"top": 100}))
    assert spec.describe() == (
        "analyze -> bm25 + dense -> fuse -> cross_encoder(top=50) -> personal(top=100) -> shape"
    )
    explicit = parse("x", " bm25+dense -> rrf(k=30, dense=2) ->personal ")
    assert explicit.fusion == Step("rrf", {"k": 30, "dense": 2})
    assert explicit.stages == (Step("personal"),)
    assert parse("y", "dense -> cross_encoder").fusion is None  # one retriever: no fusion
    assert parse("z", "bm25 + dense").fusion == Step("fuse")  # fusion by default
    assert parse("l", "bm25 + dense -> learned").fusion == Step("learned")
    assert parse("rrf", BUILTIN["rrf"]).fusion == Step("rrf")  # equal weights, always


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("", "empty step"),
        ("hybrid -> -> personal", "empty step"),
        ("elastic", "must name retrievers"),
        ("bm25 + bm25", "must name retrievers"),
        ("hybrid -> translate", "unknown step 'translate'"),
        ("hybrid -> rrf", "must come right after several retrievers"),
        ("hybrid -> cross_encoder(depth=5)", "cross_encoder takes top, not depth"),
        ("hybrid -> cross_encoder(top=0)", "top must be >= 1"),
        ("hybrid -> cross_encoder(top=true)", "top must be >= 1"),
        ("hybrid -> personal(top)", "arguments are key=value"),
        ("hybrid -> personal(at_least_k=3)", "at_least_k must be true or false"),
        ("bm25 + dense -> rrf(k=-1)", "k must be >= 1"),
        ("bm25 + dense -> weighted(dense=-1)", "weight dense must be >= 0"),
        ("hybrid -> cross_encoder(top=5", "cannot read step"),
    ],
)
def test_mistakes_are_named(definition, message):
    with pytest.raises(InvalidQueryError, match=message):
        parse("p", definition)


def test_names_are_checked():
    with pytest.raises(InvalidQueryError, match="pipeline name"):
        parse("Has Space", "bm25")
    with pytest.raises(InvalidQueryError, match="built-in name"):
        PipelinesConfig(defined={"hybrid": "bm25"})
    with pytest.raises(InvalidQueryError, match="neither a built-in"):
        PipelinesConfig(default="nowhere")


RP = "hybrid -> cross_encoder(top=50) -> personal(top=100)"


def test_the_index_configuration_defines_and_removes_pipelines():
    config = IndexConfig().with_overrides({"pipelines.rp": RP, "pipelines.default": "rp"})
    assert config.pipelines.defined == {"rp": RP}
    assert config.pipelines.default == "rp"
    again = IndexConfig.from_dict(config.to_dict())
    assert again == config
    assert again.to_dict()["pipelines"] == {"default": "rp", "rp": RP}
    removed = config.with_overrides({"pipelines.default": "", "pipelines.rp": ""})
    assert removed.pipelines == PipelinesConfig()
    assert IndexConfig.from_dict({}).pipelines == PipelinesConfig()  # older indexes
