"""Chinese queries into English words (CC-CEDICT + shop terms), and language detection."""

from __future__ import annotations

import json

import pytest
from tests_support import DATA

from shopsearch.query import QueryParser
from shopsearch.query.language import detect
from shopsearch.query.translate import Translator, cedict
from shopsearch.text.vocabulary import Vocabulary


@pytest.fixture(scope="module")
def translator():
    return Translator()


@pytest.mark.parametrize(
    ("chinese", "english"),
    [
        ("幼儿 水杯 无吸管", "toddler water bottle without straw"),
        ("ugg 女士拖鞋", "ugg women slippers"),
        ("男士 袜子 黑白", "men socks black and white"),
        ("不锈钢 深煎锅", "stainless steel deep frying pan"),
        ("猫零食 不含鸡肉", "cat treats without chicken meat"),
        ("rtx 3080 显卡", "rtx 3080 video card"),
    ],
)
def test_shop_queries_become_english_words(translator, chinese, english):
    assert translator.translate(chinese) == english


def test_latin_words_brands_and_numbers_stay_as_typed(translator):
    assert translator.translate("Dremel 4000 清洁工具 5m") == "Dremel 4000 cleaning tools 5m"
    assert translator.translate("listen without prejudice") == "listen without prejudice"


def test_the_catalog_confirms_which_gloss_to_use():
    dictionary = {"瓶": ["vase", "bottle", "jar"], "刷": ["brush", "to scrub"]}
    plain = Translator(dictionary)
    assert plain.translate("瓶 刷") == "vase brush"  # the first gloss
    vocab = Vocabulary({"bottle": 40, "brush": 12})
    assert plain.translate("瓶 刷", vocab) == "bottle brush"  # the first the catalog has


def test_an_unknown_compound_is_split_into_known_parts_and_nothing_is_invented():
    translator = Translator({"蜂鸟": ["hummingbird"], "喂食器": ["feeder"], "某地": []})
    assert translator._word("蜂鸟喂食器", None) == "hummingbird feeder"
    long = Translator({"长春": ["Changchun, subprovincial city and capital of Jilin province"]})
    assert long.translate("长春") == ""  # only a long explanation: left out, not made up


def test_cedict_is_loaded_from_the_package():
    glosses = cedict()
    assert len(glosses) > 100_000
    assert "straw" in " ".join(glosses["吸管"])
    assert glosses["吸管"] == glosses["吸管"]  # simplified and traditional both keyed
    assert "socks" in " ".join(cedict()["襪子"])


def test_language_detection():
    assert detect("ugg slippers women") == "en"
    assert detect("crème brûlée") == "en"
    assert detect("ugg 女士拖鞋") == "zh"
    assert detect("тапочки женские") == "other"


def test_a_chinese_query_is_translated_and_then_understood():
    parsed = QueryParser().parse("幼儿 水杯 无吸管 500ml")
    assert parsed.language == "zh"
    assert parsed.translation is not None and parsed.translation.startswith("toddler water")
    assert parsed.negated == ("straw",) and parsed.audience == ("toddler",)
    raw = QueryParser().parse("幼儿 水杯", relax=("translation",))
    assert raw.text == "幼儿 水杯" and raw.translation is None and raw.language == "zh"


def test_the_shipped_chinese_test_set_matches_the_dev_queries():
    rows = [json.loads(line) for line in (DATA / "esci_dev_queries_zh.jsonl").open()]
    assert len(rows) == 100 and len({r["query"] for r in rows}) == 100
    assert sum(detect(r["query_zh"]) == "zh" for r in rows) >= 90
