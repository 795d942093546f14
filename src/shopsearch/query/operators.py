"""Operators shoppers know from other search boxes: ``-word`` and ``"quoted phrase"``.

* ``-word`` (a minus directly before a word, at the start or after a space) excludes
  products that contain the word. ``t-shirt``, ``-5``, ``5-10`` and a lone ``-`` are not
  operators.
* ``"a quoted phrase"`` (straight or curly double quotes) must appear as a phrase. A quote
  that is never closed is an ordinary character.

>>> split_operators('water bottle -plastic "stainless steel"')
('water bottle stainless steel', ('plastic',), ('stainless steel',))
>>> split_operators("t-shirt -5 degrees")
('t-shirt -5 degrees', (), ())
"""

from __future__ import annotations

import re

__all__ = ["split_operators"]

_PHRASE_RE = re.compile(r"[\"\u201c\u201d\u201e]([^\"\u201c\u201d\u201e]+)[\"\u201c\u201d\u201e]")
_EXCLUDE_RE = re.compile(r"(?:(?<=\s)|^)-(?=[^\W\d_])([^\W_][\w'-]*)")


def split_operators(text: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """``(text for matching, excluded words, required phrases)``. The phrases stay in the
    matching text (without their quotes); excluded words leave it."""
    phrases = tuple(p.strip() for p in _PHRASE_RE.findall(text) if p.strip())
    text = _PHRASE_RE.sub(lambda m: f" {m.group(1)} ", text)
    excluded = tuple(dict.fromkeys(m.lower() for m in _EXCLUDE_RE.findall(text)))
    text = _EXCLUDE_RE.sub(" ", text)
    return " ".join(text.split()), excluded, phrases
