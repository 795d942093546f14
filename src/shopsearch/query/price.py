"""Price constraints written in the query: "under $50", "less than 20 dollars", "$20-$50",
"between 20 and 50 dollars", "over 100", "at least $15".

A bound with a currency sign or word ("$", "dollars", "usd", "bucks") is always a price. A
bare number counts only after a comparison word ("under 50", "over 100") and only when no
unit follows it ("under 50 lbs", "over 100 pieces" are not prices); a bare range ("5-10")
is never a price. The matched words leave the query text.

>>> find_price("water bottle under $50")
('water bottle', PriceConstraint(min=None, max=50.0, text='under $50'))
>>> find_price("rug $20-$50")
('rug', PriceConstraint(min=20.0, max=50.0, text='$20-$50'))
>>> find_price("dumbbells under 50 lbs")
('dumbbells under 50 lbs', None)
"""

from __future__ import annotations

import re

from shopsearch.query.parsed import PriceConstraint

__all__ = ["find_price"]

_NUM = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?"
_CUR_BEFORE = r"(?:\$|usd\s*|us\$)"
_CUR_AFTER = r"(?:\s*(?:\$|dollars?|usd|bucks))"
_MAX_WORDS = (
    r"under|below|less\s+than|cheaper\s+than|lower\s+than|up\s+to|max(?:imum)?|at\s+most|within|<=?"  # noqa: E501
)
_MIN_WORDS = r"over|above|more\s+than|greater\s+than|at\s+least|min(?:imum)?|from|starting\s+at|>=?"  # noqa: E501
# a unit after a bare number means it is not a price
_UNIT_AFTER = re.compile(
    r"\s*(?:-\s*)?(?:%|percent|lbs?|pounds?|oz|ounces?|kg|g|grams?|mg|ml|l|liters?|litres?|"
    r"gal(?:lons?)?|qt|quarts?|in(?:ch(?:es)?)?|\"|ft|feet|foot|'|cm|mm|m|meters?|yards?|"
    r"pcs|pieces?|pack|packs|count|ct|sheets?|rolls?|pairs?|sets?|years?|yrs?|months?|"
    r"days?|hours?|minutes?|mins?|watts?|w|volts?|v|amps?|mah|gb|tb|mb|btu|cups?|people|"
    r"persons?|seats?|pages?|x)\b",
    re.IGNORECASE,
)

_RANGE_RE = re.compile(
    rf"(?:between\s+|from\s+)?{_CUR_BEFORE}?{_NUM}{_CUR_AFTER}?\s*(?:-|\u2013|to|and)\s*"
    rf"{_CUR_BEFORE}?{_NUM}{_CUR_AFTER}?",
    re.IGNORECASE,
)
_BOUND_RE = re.compile(
    rf"(?P<op>{_MAX_WORDS}|{_MIN_WORDS})\s*(?P<cur>{_CUR_BEFORE})?{_NUM}(?P<after>{_CUR_AFTER})?",
    re.IGNORECASE,
)
_MAX_RE = re.compile(rf"^(?:{_MAX_WORDS})$", re.IGNORECASE)


def _value(whole: str, cents: str | None) -> float:
    return float(whole.replace(",", "")) + (float(f"0.{cents}") if cents else 0.0)


def find_price(text: str) -> tuple[str, PriceConstraint | None]:
    """``(text without the price words, the constraint or None)``; the first price found."""
    for m in _RANGE_RE.finditer(text):
        has_currency = "$" in m.group(0) or re.search(r"dollar|usd|buck", m.group(0), re.I)
        if not has_currency:
            continue
        low, high = _value(m.group(1), m.group(2)), _value(m.group(3), m.group(4))
        if low > high:
            low, high = high, low
        return _without(text, m), PriceConstraint(low, high, m.group(0).strip())
    for m in _BOUND_RE.finditer(text):
        if m.start() > 0 and text[m.start() - 1].isalnum():
            continue  # inside a word ("discover 5")
        currency = m.group("cur") or m.group("after")
        if not currency and _UNIT_AFTER.match(text, m.end()):
            continue
        if not currency and m.end() < len(text) and text[m.end()].isalnum():
            continue
        value = _value(m.group(3), m.group(4))
        op = " ".join(m.group("op").lower().split())
        if _MAX_RE.match(op):
            constraint = PriceConstraint(None, value, m.group(0).strip())
        else:
            constraint = PriceConstraint(value, None, m.group(0).strip())
        return _without(text, m), constraint
    return text, None


def _without(text: str, m: re.Match[str]) -> str:
    rest = " ".join((text[: m.start()] + " " + text[m.end() :]).split())
    return rest or text
