"""The query parser: every rule of :mod:`shopsearch.query`, in order.

1. clean (invisible characters out; nothing searchable left is an error); a Chinese query
   is translated into English words (:mod:`~shopsearch.query.translate`), and the rules
   below apply to the translation;
2. spelling, against the catalog's vocabulary when one is given ("bottel" -> "bottle");
3. operators (``-word``, ``"quoted phrase"``);
4. price ("under $50");
5. negation ("without straw");
6. audience ("mens");
7. expansions: synonyms and compounds ("tshirt" -> "t-shirt"), quantities ("32 oz" ->
   "32 ounce"), matched by BM25 besides the text.

>>> parsed = QueryParser().parse('toddler water bottle without straw under $20')
>>> parsed.text, parsed.negated, parsed.price.max, parsed.audience
('toddler water bottle', ('straw',), 20.0, ('toddler',))
>>> QueryParser().parse("steel bottle", relax=("price",)).relaxed
('price',)
"""

from __future__ import annotations

from collections.abc import Iterable

from shopsearch.errors import InvalidQueryError
from shopsearch.query.audience import find_audience
from shopsearch.query.clean import check_searchable
from shopsearch.query.language import detect
from shopsearch.query.negation import DEFAULT_MAX_WORDS, find_negations
from shopsearch.query.operators import split_operators
from shopsearch.query.parsed import RELAXABLE, ParsedQuery
from shopsearch.query.price import find_price
from shopsearch.query.spelling import MIN_LETTERS, Speller, Together
from shopsearch.query.synonyms import SynonymRules, builtin_rules, compound_expansions
from shopsearch.query.translate import Translator
from shopsearch.query.units import unit_variants
from shopsearch.text.vocabulary import Vocabulary

__all__ = ["QueryParser"]


class QueryParser:
    """Parses queries; ``negation_words``: the most content words a negation covers."""

    def __init__(
        self,
        negation_words: int = DEFAULT_MAX_WORDS,
        spelling: bool = True,
        typo_min_letters: int = MIN_LETTERS,
    ) -> None:
        self.negation_words = negation_words
        self.speller = Speller(min_letters=typo_min_letters) if spelling else None
        self.translator = Translator()

    def parse(
        self,
        raw: str,
        relax: Iterable[str] = (),
        vocabulary: Vocabulary | None = None,
        together: Together | None = None,
        synonyms: SynonymRules | None = None,
    ) -> ParsedQuery:
        """Parse ``raw``; ``relax``: parts to switch off; ``vocabulary``: the catalog's
        words, to correct spelling against (none: no correction); ``together``: how many
        products contain given words (see :meth:`Speller.correct`); ``synonyms``: the
        index's rules (default: the built-ins)."""
        relaxed = tuple(dict.fromkeys(relax))
        unknown = [r for r in relaxed if r not in RELAXABLE]
        if unknown:
            raise InvalidQueryError(
                f"cannot relax {', '.join(map(repr, unknown))}: choose from {', '.join(RELAXABLE)}"
            )
        text = check_searchable(raw)
        language = detect(text)
        translation = None
        if language == "zh" and "translation" not in relaxed:
            translation = self.translator.translate(text, vocabulary)
            text = translation if any(ch.isalnum() for ch in translation) else text
        corrections: tuple[tuple[str, str], ...] = ()
        corrected = None
        rules = synonyms if synonyms is not None else builtin_rules()
        if self.speller is not None and vocabulary is not None and "spelling" not in relaxed:
            text, corrections = self.speller.correct(text, vocabulary, together, rules.words)
            corrected = text if corrections else None
        excluded: tuple[str, ...] = ()
        phrases: tuple[str, ...] = ()
        if "operators" not in relaxed:
            text, excluded, phrases = split_operators(text)
        price = None
        if "price" not in relaxed:
            text, price = find_price(text)
        negated: tuple[str, ...] = ()
        if "negation" not in relaxed:
            text, negated = find_negations(text, self.negation_words)
        audience = () if "audience" in relaxed else find_audience(text)
        if not any(ch.isalnum() for ch in text):  # e.g. only "-plastic": match as typed
            text = check_searchable(raw)
        expansions: tuple[str, ...] = ()
        if "synonyms" not in relaxed:
            found = [*rules.expansions(text), *unit_variants(text)]
            if vocabulary is not None:
                found += compound_expansions(text, vocabulary)
            expansions = tuple(dict.fromkeys(found))
        return ParsedQuery(
            raw=raw,
            text=text,
            negated=negated,
            excluded=excluded,
            phrases=phrases,
            price=price,
            audience=audience,
            corrected=corrected,
            corrections=corrections,
            expansions=expansions,
            language=language,
            translation=translation,
            relaxed=relaxed,
        )
