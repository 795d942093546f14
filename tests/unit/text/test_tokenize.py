from __future__ import annotations

import subprocess
import sys
import unicodedata

import jieba
import pytest
import Stemmer
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.text import ENGLISH_STOPWORDS, Tokenizer, TokenizerConfig

STEMMER = Stemmer.Stemmer("english")
PLAIN = TokenizerConfig(stem=False, stopwords=False)


def is_cjk(token: str) -> bool:
    return all("CJK UNIFIED IDEOGRAPH" in unicodedata.name(ch, "") for ch in token)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def test_english_is_stemmed_and_stopwords_dropped(tok: Tokenizer) -> None:
    expected = STEMMER.stemWords(["running", "shoes", "women"])
    assert tok.tokenize("Running Shoes for Women") == expected


def test_stopwords_and_stemming_can_be_turned_off() -> None:
    assert Tokenizer(PLAIN).tokenize("Running Shoes for the Women") == [
        "running",
        "shoes",
        "for",
        "the",
        "women",
    ]
    assert Tokenizer(TokenizerConfig(stem=False)).tokenize("Shoes for the Women") == [
        "shoes",
        "women",
    ]


@pytest.mark.parametrize("word", ["without", "no", "not", "nor", "never", "none"])
def test_negations_are_kept(tok: Tokenizer, word: str) -> None:
    assert word not in ENGLISH_STOPWORDS
    assert tok.tokenize(f"tumbler {word} straw") == STEMMER.stemWords(["tumbler", word, "straw"])


def test_possessive_s_is_dropped(tok: Tokenizer) -> None:
    assert tok.tokenize("Women's UGG") == ["women", "ugg"]


def test_chinese_is_segmented(tok: Tokenizer) -> None:
    tokens = tok.tokenize("红色连衣裙")
    assert len(tokens) > 1
    assert all(is_cjk(t) for t in tokens)
    assert tokens == jieba.lcut_for_search("红色连衣裙")
    assert "连衣裙" in tokens  # search mode keeps the whole word as well as its parts


def test_chinese_punctuation_is_removed(tok: Tokenizer) -> None:
    tokens = tok.tokenize("红色，连衣裙！【新款】")
    assert tokens and all(is_cjk(t) for t in tokens)


def test_mixed_chinese_and_english(tok: Tokenizer) -> None:
    tokens = tok.tokenize("耐克 running shoes 男款")
    assert tokens == ["耐克", *STEMMER.stemWords(["running", "shoes"]), "男款"]
    # no spaces needed between scripts
    assert tok.tokenize("耐克running鞋") == ["耐克", "run", "鞋"]


def test_cjk_off_gives_unigrams() -> None:
    assert Tokenizer(TokenizerConfig(cjk=False)).tokenize("红色 dress") == ["红", "色", "dress"]


def test_accented_latin_is_kept_and_stemmed(tok: Tokenizer) -> None:
    assert tok.tokenize("Café Crème Naïve") == STEMMER.stemWords(["café", "crème", "naïve"])
    assert Tokenizer(PLAIN).tokenize("Crème BRÛLÉE") == ["crème", "brûlée"]


def test_cyrillic_and_greek_are_casefolded_not_stemmed(tok: Tokenizer) -> None:
    assert tok.tokenize("Кроссовки Женские") == ["кроссовки", "женские"]
    assert tok.tokenize("ΣΑΠΟΥΝΙ") == ["σαπουνι"]


def test_numbers_decimals_and_sizes(tok: Tokenizer) -> None:
    assert tok.tokenize("1.75 L bottle, 3x5 rug w/ 2,5 kg, 12 pack.") == [
        "1.75",
        "l",
        STEMMER.stemWord("bottle"),
        "3x5",
        "rug",
        "w",
        "2,5",
        "kg",
        "12",
        "pack",
    ]
    # a period after a word is punctuation, not a decimal point
    assert tok.tokenize("end.12") == ["end", "12"]


def test_unicode_is_nfkc_normalized(tok: Tokenizer) -> None:
    assert tok.tokenize("ＵＧＧ　Ｓｌｉｐｐｅｒ １２") == ["ugg", "slipper", "12"]
    assert Tokenizer(PLAIN).tokenize("Straße ﬁne") == ["strasse", "fine"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "...!?", "— / & _ _", "，。！"])
def test_empty_whitespace_or_punctuation_gives_nothing(tok: Tokenizer, text: str) -> None:
    assert tok.tokenize(text) == []


def test_only_stopwords_gives_nothing(tok: Tokenizer) -> None:
    assert tok.tokenize("for the and of") == []


def test_batch_matches_single(tok: Tokenizer) -> None:
    texts = ["Running Shoes", "", "红色连衣裙", "1.75 L"]
    assert tok.tokenize_batch(texts) == [tok.tokenize(t) for t in texts]
    assert tok.tokenize_batch(iter(texts)) == [tok.tokenize(t) for t in texts]


def test_config_roundtrip() -> None:
    config = TokenizerConfig(stem=False, stopwords=True, cjk=False)
    assert TokenizerConfig.from_dict(config.to_dict()) == config


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokens_are_nonempty_words(text: str) -> None:
    for token in Tokenizer(TokenizerConfig(cjk=False)).tokenize(text):
        assert token
        assert not any(ch.isspace() for ch in token)
        assert "_" not in token


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcXYZéü019 .,-/'"), max_size=40))
def test_plain_tokenization_is_stable(text: str) -> None:
    tok = Tokenizer(PLAIN)
    tokens = tok.tokenize(text)
    assert tok.tokenize(" ".join(tokens)) == tokens


def test_jieba_loads_lazily_and_silently() -> None:
    code = (
        "import sys\n"
        "from shopsearch.text import Tokenizer\n"
        "t = Tokenizer()\n"
        "t.tokenize('running shoes')\n"
        "assert 'jieba' not in sys.modules\n"
        "print(t.tokenize('红色连衣裙'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "连衣裙" in proc.stdout
