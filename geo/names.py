"""Street names: normalization and similarity, so "W 7th St." matches "West 7th Street".

>>> normalize_street("West 7th Street")
'w 7th st'
>>> normalize_street("Rue de l'Église")
'rue de l eglise'
>>> name_similarity("W. 7th St", "West 7th Street")
1.0
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache

__all__ = ["has_house_number", "name_similarity", "normalize_street"]

_ABBREVIATIONS = {
    "street": "st", "str": "st", "avenue": "ave", "av": "ave", "boulevard": "blvd", "road": "rd",
    "drive": "dr", "lane": "ln", "place": "pl", "court": "ct", "terrace": "ter", "parkway": "pkwy",
    "highway": "hwy", "expressway": "expy", "freeway": "fwy", "square": "sq", "circle": "cir",
    "north": "n", "south": "s", "east": "e", "west": "w", "northeast": "ne", "northwest": "nw",
    "southeast": "se", "southwest": "sw", "mount": "mt", "fort": "ft", "saint": "st",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "sixth": "6th", "seventh": "7th", "eighth": "8th", "ninth": "9th", "tenth": "10th",
    "route": "rte", "interstate": "i", "strasse": "str", "straße": "str",
}
_SPLIT = re.compile(r"[^\w]+", re.UNICODE)
_HOUSE_NUMBER = re.compile(r"^\s*\d+[a-z]?\s+\D|\s\d+[a-z]?\s*$", re.IGNORECASE)


@lru_cache(maxsize=65536)
def normalize_street(name: str) -> str:
    """Lower case, no accents, no punctuation, common words abbreviated one way."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = [w for w in _SPLIT.split(plain) if w]
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words)


@lru_cache(maxsize=65536)
def name_similarity(a: str, b: str) -> float:
    """1.0 for the same street after normalization, down to 0.0 for unrelated names."""
    left, right = normalize_street(a), normalize_street(b)
    if not left or not right:
        return 0.0
    if left == right:
        return 1.0
    return SequenceMatcher(None, left, right, autojunk=False).ratio()


def has_house_number(street: str) -> bool:
    """True when a street name carries a house number ("1200 Main St", "Main St 12").

    Ordinal streets ("5th Avenue") and route numbers ("Route 9" with a word before) are not house numbers.

    >>> has_house_number("1200 Main Street"), has_house_number("5th Avenue"), has_house_number("Route 9")
    (True, False, False)
    """
    text = street.strip()
    if re.match(r"^\d+\s+\D", text):
        return True
    return bool(re.search(r"^\D+\s\d+[a-z]?$", text)) and not re.match(
        r"^(route|rte|highway|hwy|i|us|sr|state route|county road|cr)\s", text, re.IGNORECASE
    )
