"""Synonyms and compounds: other words a product may use for what the query says.

Rules are written in the Solr / Elasticsearch synonym format, one per line:

* ``tshirt, t-shirt, t shirt, tee shirt`` -- equivalent: a query with any of them also
  matches the others;
* ``hoodie, hooded sweatshirt => sweatshirt`` -- explicit: a query with a left-hand side
  also matches the right-hand side (the words typed still match too);
* ``#`` starts a comment; blank lines are ignored.

Matching is on whole words after :func:`~shopsearch.text.normalize.key` ("T-Shirt" and
"t-shirt" are the same). Built-in compounds (:data:`BUILTIN`) apply to every index; an
index's own rules live in ``DIR/synonyms.txt`` and are re-read when the file changes, with
no re-indexing. Beyond the rules, two adjacent query words whose joined form is a catalog
word also match it ("air pods" -> "airpods", "wi fi" -> "wifi").

Expansions feed BM25 only: the dense model reads the query as typed, and understands these
variants itself.

>>> rules = SynonymRules.parse("tshirt, t-shirt, t shirt\\nhoodie => sweatshirt")
>>> rules.expansions("mens tshirt black")
('t-shirt', 't shirt')
>>> rules.expansions("zip hoodie")
('sweatshirt',)
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from shopsearch.errors import InvalidQueryError
from shopsearch.text.normalize import key
from shopsearch.text.vocabulary import Vocabulary

__all__ = ["BUILTIN", "SynonymFile", "SynonymRules", "builtin_rules", "compound_expansions"]

BUILTIN = """
tshirt, t-shirt, t shirt, tee shirt
sweatshirt, sweat shirt
wifi, wi-fi, wi fi
airpods, air pods
earbuds, ear buds
ecloth, e-cloth
bluetooth, blue tooth
usb-c, usb c, usbc, type-c, type c
hdmi, hdmi cable
ipad, i pad
iphone, i phone
ebook, e-book, e book
xbox, x-box
dvd, dvds
cd, cds
pj, pjs, pajama, pajamas, pyjamas
"""


@dataclass(frozen=True)
class _Rule:
    left: tuple[str, ...]  # keys of phrases that trigger it
    right: tuple[str, ...]  # keys of phrases added


_TOKEN_RE = re.compile(r"[^\W_](?:[\w'-]*[^\W_])?")


def _words(text: str) -> str:
    """``text``'s key with punctuation other than inner hyphens and apostrophes dropped."""
    return " ".join(_TOKEN_RE.findall(key(text)))


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(k for k in (_words(p) for p in text.split(",")) if k)


class SynonymRules:
    """Parsed rules (see the module docstring)."""

    def __init__(self, rules: Iterable[_Rule] = ()) -> None:
        self.rules = tuple(rules)

    def __len__(self) -> int:
        return len(self.rules)

    @classmethod
    def parse(cls, text: str, source: str = "synonyms") -> SynonymRules:
        """Rules from ``text``; :class:`InvalidQueryError` names the line at fault."""
        rules = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.count("=>") > 1:
                raise InvalidQueryError(f"{source}:{number}: more than one '=>' in {line!r}")
            if "=>" in line:
                left, right = (_phrases(side) for side in line.split("=>"))
                if not left or not right:
                    raise InvalidQueryError(
                        f"{source}:{number}: '=>' needs phrases on both sides: {line!r}"
                    )
                rules.append(_Rule(left, right))
                continue
            group = _phrases(line)
            if len(group) < 2:
                raise InvalidQueryError(
                    f"{source}:{number}: a synonym group needs two or more phrases separated "
                    f"by commas: {line!r}"
                )
            rules.append(_Rule(group, group))
        return cls(rules)

    @cached_property
    def words(self) -> frozenset[str]:
        """Every word of every rule (known words: never spell-corrected)."""
        return frozenset(
            w
            for rule in self.rules
            for p in (*rule.left, *rule.right)
            for w in re.split(r"[ -]", p)
        )

    def __add__(self, other: SynonymRules) -> SynonymRules:
        return SynonymRules((*self.rules, *other.rules))

    def expansions(self, text: str) -> tuple[str, ...]:
        """Phrases to match besides ``text`` (none already in it)."""
        typed = f" {_words(text)} "
        out: list[str] = []
        for rule in self.rules:
            if any(f" {phrase} " in typed for phrase in rule.left):
                for phrase in rule.right:
                    if f" {phrase} " not in typed and phrase not in out:
                        out.append(phrase)
        return tuple(out)


@lru_cache(maxsize=1)
def builtin_rules() -> SynonymRules:
    """:data:`BUILTIN`, parsed once."""
    return SynonymRules.parse(BUILTIN, "built-in synonyms")


def compound_expansions(text: str, vocabulary: Vocabulary, min_count: int = 2) -> tuple[str, ...]:
    """Joined forms of adjacent words that the catalog contains ("air pods" -> "airpods").

    >>> compound_expansions("air pods pro", Vocabulary({"airpods": 5, "podspro": 1}))
    ('airpods',)
    """
    words = re.findall(r"[^\W\d_]+", key(text))
    out = []
    for a, b in zip(words, words[1:], strict=False):
        joined = a + b
        if len(joined) >= 5 and vocabulary.count(joined) >= min_count and joined not in out:
            out.append(joined)
    return tuple(out)


class SynonymFile:
    """An index's ``synonyms.txt`` plus the built-ins, re-read when the file changes.

    A file with a mistake keeps the rules last read (the error is in :attr:`error`); a
    missing file means the built-ins only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.error: str | None = None
        self._builtin = builtin_rules()
        self._rules = self._builtin
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def rules(self) -> SynonymRules:
        if self.path is None:
            return self._rules
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return self._rules
        with self._lock:
            if stamp != self._stamp:
                self._load(stamp)
        return self._rules

    def _load(self, stamp: tuple[int, int] | None) -> None:
        self._stamp = stamp
        if stamp is None or self.path is None:
            self._rules, self.error = self._builtin, None
            return
        try:
            own = SynonymRules.parse(self.path.read_text(encoding="utf-8"), str(self.path))
        except (InvalidQueryError, OSError, UnicodeDecodeError) as exc:
            self.error = str(exc)  # keep the rules last read
            return
        self._rules, self.error = self._builtin + own, None
