"""Quantities and sizes: the spellings of one quantity, so that variants match.

"200 mg" = "200mg", "32 oz" = "32-ounce" = "32oz", '1/2"' = "1/2 in" = "1/2-inch",
"3 pack" = "pack of 3" = "3pk" = "3-count". For each quantity in the query,
:func:`unit_variants` returns its other spellings; BM25 matches any of them (the query text
itself is unchanged, and numbers are never spell-corrected).

>>> unit_variants("vitamin c 200mg")
('200 mg', '200 milligram', '200milligram')
>>> unit_variants("water bottle 32 oz")
('32oz', '32 ounce', '32ounce')
>>> unit_variants("pack of 3 socks")
('3 pack', '3pack', '3 pk', '3pk', '3 count', '3count')
"""

from __future__ import annotations

import re

__all__ = ["unit_variants"]

#: canonical unit -> its spellings (the canonical one first)
UNITS: dict[str, tuple[str, ...]] = {
    "oz": ("oz", "ounce", "ounces", "fl oz"),
    "lb": ("lb", "lbs", "pound", "pounds"),
    "mg": ("mg", "milligram", "milligrams"),
    "g": ("g", "gram", "grams", "gr"),
    "kg": ("kg", "kilogram", "kilograms", "kilo", "kilos"),
    "ml": ("ml", "milliliter", "milliliters", "millilitre", "millilitres"),
    "l": ("l", "liter", "liters", "litre", "litres", "ltr"),
    "gal": ("gal", "gallon", "gallons"),
    "qt": ("qt", "quart", "quarts"),
    "in": ("in", "inch", "inches", '"', "\u201d", "''"),
    "ft": ("ft", "foot", "feet", "'", "\u2019"),
    "mm": ("mm", "millimeter", "millimeters"),
    "cm": ("cm", "centimeter", "centimeters"),
    "pack": ("pack", "pk", "count", "ct", "pcs", "pieces", "piece", "pc"),
    "w": ("w", "watt", "watts"),
    "v": ("v", "volt", "volts"),
    "mah": ("mah",),
    "gb": ("gb", "gigabyte", "gigabytes"),
    "tb": ("tb", "terabyte", "terabytes"),
}
# the variants each unit is written as (glued and spaced forms are both produced)
_WRITTEN: dict[str, tuple[str, ...]] = {
    "oz": ("oz", "ounce"),
    "lb": ("lb", "lbs", "pound"),
    "mg": ("mg", "milligram"),
    "g": ("g", "gram"),
    "kg": ("kg", "kilogram"),
    "ml": ("ml", "milliliter"),
    "l": ("l", "liter", "litre"),
    "gal": ("gal", "gallon"),
    "qt": ("qt", "quart"),
    "in": ("in", "inch"),
    "ft": ("ft", "foot", "feet"),
    "mm": ("mm",),
    "cm": ("cm",),
    "pack": ("pack", "pk", "count"),
    "w": ("w", "watt"),
    "v": ("v", "volt"),
    "mah": ("mah",),
    "gb": ("gb",),
    "tb": ("tb",),
}
_SPELLING_TO_UNIT = {s: unit for unit, spellings in UNITS.items() for s in spellings}
_NUMBER = r"(\d+(?:[.,]\d+)?(?:\s*/\s*\d+)?)"
_SPELLINGS = "|".join(
    re.escape(s) for s in sorted(_SPELLING_TO_UNIT, key=len, reverse=True) if s.isalpha()
)
_QUANTITY_RE = re.compile(
    rf"(?<![\w.]){_NUMBER}\s*-?\s*(?:({_SPELLINGS})\b|([\"\u201d\u2019']{{1,2}}))",
    re.IGNORECASE,
)
_PACK_OF_RE = re.compile(r"\b(?:pack|set|box|case|bag)\s+of\s+(\d+)\b", re.IGNORECASE)


def _variants(number: str, unit: str) -> list[str]:
    number = re.sub(r"\s*/\s*", "/", number)
    out = []
    for written in _WRITTEN[unit]:
        out += [f"{number} {written}", f"{number}{written}"]
    return out


def unit_variants(text: str) -> tuple[str, ...]:
    """The other spellings of the quantities in ``text`` (none already in it)."""
    found: list[tuple[str, str, str]] = []  # (number, unit, as written)
    for m in _QUANTITY_RE.finditer(text):
        number = m.group(1)
        spelled = (m.group(2) or m.group(3) or "").lower()
        unit = _SPELLING_TO_UNIT.get(spelled) or (
            "in" if '"' in spelled or "\u201d" in spelled else "ft"
        )
        found.append((number, unit, m.group(0)))
    for m in _PACK_OF_RE.finditer(text):
        found.append((m.group(1), "pack", m.group(0)))
    typed = f" {' '.join(text.lower().split())} "
    out: list[str] = []
    for number, unit, _ in found:
        for variant in _variants(number, unit):
            if f" {variant} " not in typed and variant not in out:
                out.append(variant)
    return tuple(out)
