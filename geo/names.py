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

__all__ = ["DIFFERENT_STREETS", "SAME_STREET", "has_house_number", "name_similarity", "normalize_street",
           "numbered_apart"]

#: two names at least this similar (:func:`name_similarity`) are one street
SAME_STREET = 0.8

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
    """1.0 for the same street after normalization, down to 0.0 for unrelated names.

    Two names whose numbers differ ("7th Street" and "8th Street", "I 80" and "I 880") or whose
    compass prefixes or suffixes differ ("N Main St" and "S Main St") are different streets
    however alike they read: at most :data:`DIFFERENT_STREETS`.

    >>> name_similarity("7th Street", "8th St") < SAME_STREET <= name_similarity("8th Street", "8th St.")
    True
    >>> name_similarity("N Main St", "S Main Street") < SAME_STREET <= name_similarity("Main St", "N Main St")
    True
    """
    left, right = normalize_street(a), normalize_street(b)
    if not left or not right:
        return 0.0
    if left == right:
        return 1.0
    ratio = SequenceMatcher(None, left, right, autojunk=False).ratio()
    if _numbered_apart(left, right):
        return min(ratio, DIFFERENT_STREETS)
    return ratio


def numbered_apart(a: str, b: str) -> bool:
    """Whether two names differ in a number or a compass word: other streets, however alike they read.

    >>> numbered_apart("8th Street", "9th St"), numbered_apart("9th Stret", "9th Street")
    (True, False)
    """
    return _numbered_apart(normalize_street(a), normalize_street(b))


def _numbered_apart(left: str, right: str) -> bool:
    return bool(left and right) and (_DIGITS.findall(left) != _DIGITS.findall(right)
                                     or _compass_conflict(left.split(), right.split()))


#: the similarity at most of two names that differ in a number or a compass word
DIFFERENT_STREETS = 0.5
_DIGITS = re.compile(r"\d+")
_COMPASS = frozenset({"n", "s", "e", "w", "ne", "nw", "se", "sw"})


def _compass_conflict(left: list[str], right: list[str]) -> bool:
    """Both names carry a compass word at the same end, and they differ (N vs S Main St)."""
    for end in (0, -1):
        a, b = left[end], right[end]
        if a in _COMPASS and b in _COMPASS and a != b:
            return True
    return False



def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: months (en, fr, de, nl, es, pt, it, pl genitive), without accents: "8 Mai 1945", "3 Maja" and
#: "24 de Julio" are dates that name a street, not house numbers
_MONTHS = _words(
    "january february march april may june july august september october november december "
    "janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre "
    "januar februar marz juni juli oktober dezember januari februari maart mei augustus "
    "enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre noviembre diciembre "
    "janeiro fevereiro marco maio junho julho setembro outubro novembro dezembro "
    "gennaio febbraio aprile maggio giugno luglio settembre ottobre dicembre "
    "stycznia lutego marca kwietnia maja czerwca lipca sierpnia wrzesnia pazdziernika listopada grudnia"
)
#: street-type words written after the name: a number after "Main Street" is a house number
_TYPE_AFTER = _words(
    "street st avenue ave av road rd drive dr lane ln boulevard blvd way place pl court ct terrace ter "
    "crescent cres close square sq parkway pkwy circle cir trail row walk mews gardens grove "
    "strasse str weg gasse allee platz straat laan plein gracht kade utca vej gade"
)
#: the same as the end of one compound word: "Hauptstraße 12", "Kalverstraat 1", "Storgatan 3"
_COMPOUND_ENDS = (
    "strasse", "str", "weg", "gasse", "allee", "platz", "damm", "ufer", "straat", "laan", "plein", "gracht",
    "gatan", "vagen", "gade", "vej", "katu", "tie",
)
#: route classes as the start of one compound word: "Bundesstraße 14", "Rijksweg 12" are numbered roads
_ROUTE_PREFIXES = ("bundes", "landes", "staats", "kreis", "rijks", "provinciale")
#: a word before "Road": "County Road 5", "Farm to Market Road 1960" are numbered roads
_ROUTE_QUALIFIERS = _words(
    "county co state forest township twp market ranch parish federal provincial regional national interstate us "
    "service"
)
#: street-type words written before the name: "Via Roma 12", "Calle Mayor 12" (but "Calle 26" is a name)
_TYPE_BEFORE = _words(
    "via viale corso piazza piazzale largo calle avenida avda rua carrer rue boulevard bd chemin plaza paseo "
    "travessa strada carrera transversal diagonal"
)
_NUMBER = r"\d+(?:\s?[a-z]|\s(?:bis|ter))?(?:\s?[-/]\s?\d+[a-z]?)?"
_LEADING = re.compile(rf"^{_NUMBER}\s*[\s,]\s*\S")
_TRAILING = re.compile(rf"^(?P<name>.*\S)(?P<comma>\s*,)?\s+{_NUMBER}$")
_MARKED = re.compile(r"(?:#|\bn[°ºo]\.?|\bnr\.?)\s*\d", re.IGNORECASE)
_DATE = re.compile(r"^\d{1,2}(?:er|e|o|º|°)?\s+(?:de\s+)?(?P<month>[a-z]+)(?:\s+(?:de\s+)?\d{4})?$")
_WORD = re.compile(r"[^\W\d_]+")


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def has_house_number(street: str) -> bool:
    """True when a street name carries a house number, so it is an address and not a name.

    A house number is recognised as

    * a number at the start followed by a name ("1200 Main Street", "12 bis Rue de Rivoli",
      "1200 Interstate 880", "12-14 High St"), unless the start is a date ("8 Mai 1945",
      "3 Maja", "24 de Julio");
    * a number marked as one ("Calle 26 # 12-34", "Hauptstr. Nr. 5", "n° 12");
    * a number after a comma at the end ("Calle Mayor, 12");
    * a number at the end after a complete street name: a street-type word with a name before it
      ("Main Street 12"), one compound word ending in a street type ("Hauptstraße 12",
      "Kalverstraat 1"), or a street-type word first with a name between ("Via Roma 12").

    Numbers that are the name stay names: ordinals ("8th Street"), routes ("Interstate 880",
    "CA 24", "I-25", "US 36", "B 14", "N 201", "Autoroute 40", "Highway 1", "Route 66",
    "County Road 5", "Bundesstraße 14"), numbered streets ("Carrera 7", "Calle 26", "Ring 2",
    "Avenue 12"), dates ("Rue du 8 Mai 1945") and numbered lanes ("Kebon Kacang 9").

    >>> has_house_number("1200 Main Street"), has_house_number("5th Avenue"), has_house_number("Route 9")
    (True, False, False)
    >>> has_house_number("Main Street 12"), has_house_number("County Road 5"), has_house_number("B 14")
    (True, False, False)
    """
    text = " ".join(_plain(street).split())
    if not text:
        return False
    if _LEADING.match(text):
        date = _DATE.match(text)
        return date is None or date.group("month") not in _MONTHS
    if _MARKED.search(text):
        return True
    trailing = _TRAILING.match(text)
    if trailing is None:
        return False
    if trailing.group("comma"):
        return True
    words = _WORD.findall(trailing.group("name"))
    if not words or re.search(r"\d", trailing.group("name").split()[-1]):
        return False  # "Rue du 8 Mai 1945" ends in a word; "E 138 12"-like runs of numbers are not addresses
    last = words[-1]
    if last in _MONTHS:
        return False
    if last in _TYPE_AFTER:
        return len(words) >= 2 and not (last in ("road", "rd") and words[-2] in _ROUTE_QUALIFIERS)
    if len(words) == 1:
        return not last.startswith(_ROUTE_PREFIXES) and any(
            last.endswith(end) and len(last) > len(end) + 2 for end in _COMPOUND_ENDS
        )
    return (
        len(words) >= 2 and words[0] in _TYPE_BEFORE and not re.search(r"\d", trailing.group("name"))
        and last not in _TYPE_BEFORE
    )
