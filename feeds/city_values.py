"""The values of a city event that need more than a type check: text, local times, schedules.

:func:`feeds.city.city_event` reads every city event's text fields, times and schedule through
these, so the rules hold whatever the event comes from; :func:`feeds.cifs.check_cifs_rules`
checks published schedules with the same :func:`schedule_problems`, so entry and publish agree.

* **Storable values** (:func:`check_storable`, :func:`check_nesting`, :func:`integer_problem`,
  :func:`id_problem`): what every codec lets into the store (the Waze feed's too) is kept by both
  stores and read back by every reader: no NUL and no lone surrogate in any text (keys too), no
  non-finite number, whole numbers within their column (:data:`INT32` for the typed ``Integer``
  columns, :data:`JSON_INT` in attributes), text within its ``String(n)`` column
  (:data:`TEXT_COLUMNS`), attributes nested at most :data:`MAX_DEPTH` levels.
* **Text** (:func:`text_problem`): no lone surrogate (a byte that was not UTF-8, as
  ``surrogateescape`` carries it from a command line), no control character (Unicode category
  Cc: NUL, the other C0 and C1 controls, DEL) and neither of the XML non-characters U+FFFE and
  U+FFFF; free text (a description) may hold tab, newline and carriage return.
* **Times** (:func:`parse_time`): ISO 8601; without an offset a local time in the city's zone,
  refused when the clocks skip it (DST gap) or show it twice (DST fold), never shifted or
  resolved silently; within :data:`TIME_RANGE` once in UTC.
* **Schedules** (:func:`schedule_problems`): windows ``HH:MM-HH:MM`` within 00:00-23:59, start
  before end, not overlapping; an overnight window is refused with the advice to split it.
* **Descriptions** (:func:`plain_text`): HTML that publishers leave in free text (CDOT's WZDx
  joins its two directions' texts with ``<br/>``) becomes plain text; a line break stays a line
  break (``\n``), never a "; ", so a description reads as its publisher laid it out.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from typing import Any

from exchange.errors import ItemRejected
from exchange.model import SCHEDULE_DAYS

__all__ = [
    "EARLIEST",
    "INT32",
    "INT64",
    "JSON_INT",
    "LATEST",
    "MAX_DEPTH",
    "MAX_EVENT_ID",
    "MAX_OPERATOR",
    "MAX_SOURCE_ID",
    "TEXT_COLUMNS",
    "TIME_RANGE",
    "check_length",
    "check_nesting",
    "check_storable",
    "check_text",
    "id_problem",
    "integer_problem",
    "local_time",
    "optional_text",
    "parse_time",
    "plain_text",
    "schedule_problems",
    "schedule_windows",
    "shown_integer",
    "text_problem",
    "weekly_schedule",
]

#: the first instant a city event's time may be (inclusive)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: the first instant after the last a city event's time may be (exclusive): times are in 2000..2099 (UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
#: the range of :data:`EARLIEST`..:data:`LATEST` in words, for messages
TIME_RANGE = "the years 2000 to 2099 (UTC)"
#: one schedule window, hours and minutes of its start and end
_WINDOW = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")

# --------------------------------------------------------------------------- what the store keeps

#: the length of the store's ``String(n)`` columns a feed value lands in (exchange/schema.py:
#: ``events`` and ``revisions.operator``); longer text rejects its item (SQLite would keep it,
#: PostgreSQL refuses it and with it the whole poll)
TEXT_COLUMNS: dict[str, int] = {
    "id": 300, "source_id": 200, "type": 100, "subtype": 100, "country": 20, "direction": 30,
    "blocking_alert_uuid": 200, "operator": 100,
}
MAX_SOURCE_ID, MAX_EVENT_ID, MAX_OPERATOR = TEXT_COLUMNS["source_id"], TEXT_COLUMNS["id"], TEXT_COLUMNS["operator"]
#: the whole numbers of an ``Integer`` column (32 bits on PostgreSQL): reliability, delay, level, ...
INT32 = (-(2**31), 2**31 - 1)
#: the whole numbers of a ``BigInteger`` column (times in epoch milliseconds)
INT64 = (-(2**63), 2**63 - 1)
#: the whole numbers a JSON column keeps exactly: what orjson reads and writes (it reads a larger
#: one as a float, and cannot write it)
JSON_INT = (-(2**63), 2**64 - 1)
#: how many levels of objects and lists a record's attributes may nest, the record itself being the
#: first: deep enough for any real feed, far below what orjson writes (255) and reads (1024)
MAX_DEPTH = 64

# --------------------------------------------------------------------------- text

_SURROGATE = re.compile("[\ud800-\udfff]")
#: Unicode controls (category Cc) and the two XML 1.0 non-characters: never in a one-line field
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
#: the same, except tab, newline and carriage return: never in a free text (description)
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
#: what no store keeps: NUL (PostgreSQL text) and lone surrogates (not encodable as UTF-8)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str, *, multiline: bool = False, controls: bool = True) -> str | None:
    """What makes ``text`` unfit for a field, or ``None``; positions count characters from 0.

    A lone surrogate ``U+DC80``..``U+DCFF`` is how Python carries a byte that was not UTF-8
    (``surrogateescape``: a command-line argument, a file name), so it is reported as that byte.
    With ``controls`` (the default), control characters are refused too: all of them, or with
    ``multiline`` all but tab, newline and carriage return. Without ``controls`` only what no
    store keeps is refused: NUL and lone surrogates.

    >>> text_problem("caf\\udce9")
    'is not valid UTF-8 text (byte 0xe9 at position 3)'
    >>> text_problem("Main\\x07St"), text_problem("two\\nlines", multiline=True)
    ('contains a control character U+0007 at position 4', None)
    """
    found = _SURROGATE.search(text)
    if found is not None:
        code = ord(found.group())
        if 0xDC80 <= code <= 0xDCFF:
            return f"is not valid UTF-8 text (byte 0x{code - 0xDC00:02x} at position {found.start()})"
        return f"is not valid Unicode text (a lone surrogate U+{code:04X} at position {found.start()})"
    pattern = (_CONTROL_MULTILINE if multiline else _CONTROL) if controls else _UNSTORABLE
    found = pattern.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if code == 0:
        return f"contains a NUL character at position {found.start()}"
    kind = "a non-character" if code in (0xFFFE, 0xFFFF) else "a control character"
    return f"contains {kind} U+{code:04X} at position {found.start()}"


def check_text(value: str, field: str, *, multiline: bool = False) -> str:
    """``value`` when :func:`text_problem` finds nothing in it; else ``ItemRejected`` naming ``field``."""
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        raise ItemRejected(f"{field}: {problem}")
    return value


def optional_text(value: str | None, field: str, *, multiline: bool = False) -> str | None:
    """The stripped text, ``None`` when empty; refused as :func:`check_text` does."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ItemRejected(f"{field}: expected text, got {type(value).__name__}")
    return check_text(value, field, multiline=multiline).strip() or None


#: HTML elements that end a line of text: a line break in the plain text
_HTML_BREAK = re.compile(r"<(?:br|/?(?:p|div|li|tr|h[1-6])|hr)\b[^<>]*>", re.IGNORECASE)
#: the other HTML elements seen in free text, dropped with their attributes. Only known element names:
#: "closed <north side>" or "a < b" is text an operator typed, not markup
_HTML_TAG = re.compile(
    r"</?(?:a|abbr|b|big|blockquote|center|code|em|font|i|img|ol|small|span|strong|sub|sup|table|tbody"
    r"|td|th|thead|u|ul|p|div|li|tr|h[1-6])\b[^<>]*>",
    re.IGNORECASE,
)
#: a character reference: named (``&amp;``, ``&nbsp;``) or numeric (``&#39;``, ``&#x27;``); a bare "&" is text
_HTML_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def plain_text(text: str) -> str:
    """``text`` without the HTML a publisher left in it: ``<br/>``, ``<p>`` and ``<div>`` boundaries
    become line breaks, other known tags are dropped, character references (``&amp;``, ``&#39;``)
    are read; spaces around a line break and empty lines go. Text without markup is returned as is.

    >>> plain_text("Right lane closed.<br/>Left lane closed &amp; shoulder.")
    'Right lane closed.\\nLeft lane closed & shoulder.'
    >>> plain_text("Closed <north side> & A < B")
    'Closed <north side> & A < B'
    """
    if "<" not in text and "&" not in text:
        return text
    plain = _HTML_TAG.sub("", _HTML_BREAK.sub("\n", text))
    plain = _HTML_ENTITY.sub(lambda found: html.unescape(found.group()), plain)
    if plain == text:
        return text
    return "\n".join(line.strip() for line in plain.splitlines() if line.strip())


def check_storable(value: Any, path: str = "", *, depth: int = MAX_DEPTH) -> None:
    """Refuse at any depth what no store keeps faithfully and every reader reads back.

    NUL and lone surrogates in text (keys too), non-finite numbers, whole numbers outside
    :data:`JSON_INT`, and objects or lists nested more than ``depth`` levels (``value`` itself
    being the first) each raise ``ItemRejected`` naming where they are.

    >>> check_storable({"a": [1, 2.5, "x"]})
    >>> try:
    ...     check_storable({"reliability": 10**30})
    ... except ItemRejected as exc:
    ...     print(exc.message)
    reliability: 1000000000000000000000000000000 is out of range (-9223372036854775808 to 18446744073709551615)
    """
    if isinstance(value, str):
        problem = text_problem(value, controls=False)
        if problem is not None:
            raise ItemRejected(f"{path or 'value'}: {problem}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            beyond = " (infinite, or beyond the float range)" if math.isinf(value) else ""
            raise ItemRejected(f"{path or 'value'}: {value} is not a finite number{beyond}")
    elif isinstance(value, int):
        problem = integer_problem(value, JSON_INT)
        if problem is not None:
            raise ItemRejected(f"{path or 'value'}: {problem}")
    elif isinstance(value, Mapping):
        if depth < 1:
            raise ItemRejected(_too_deep(path))
        for key, inner in value.items():
            name = str(key)
            problem = text_problem(name, controls=False)
            if problem is not None:
                raise ItemRejected(f"a field name under {path or 'the record'} {problem}")
            check_storable(inner, f"{path}.{name}" if path else name, depth=depth - 1)
    elif isinstance(value, list | tuple):
        if depth < 1:
            raise ItemRejected(_too_deep(path))
        for position, inner in enumerate(value):
            check_storable(inner, f"{path}[{position}]", depth=depth - 1)


def check_nesting(value: Any, path: str = "", *, depth: int = MAX_DEPTH) -> None:
    """The nesting part of :func:`check_storable` alone, for values a JSON reader already checked otherwise.

    orjson rules out everything else :func:`check_storable` refuses but NUL (which the readers look
    for in the bytes) and reads objects nested up to 1024 levels. This walks the dicts and lists
    only, and names the place only when it fails, so it costs a fraction of the full check; the
    message is the same.
    """
    try:
        _walk_nesting(value, depth)
    except _TooDeep as exc:
        where = "".join(reversed(exc.parts))
        raise ItemRejected(_too_deep(path + where if path else where.removeprefix("."))) from None


class _TooDeep(Exception):
    """Raised at the level too many; each level on the way out adds its key (in reverse order)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []


_CONTAINERS = (dict, list, tuple)


def _walk_nesting(value: Any, depth: int) -> None:
    children: Iterable[tuple[str, Any]]
    if isinstance(value, dict):
        children = ((f".{key}", inner) for key, inner in value.items())
    elif isinstance(value, list | tuple):
        children = ((f"[{position}]", inner) for position, inner in enumerate(value))
    else:
        return
    if depth < 1:
        raise _TooDeep
    for label, inner in children:
        if isinstance(inner, _CONTAINERS):
            try:
                _walk_nesting(inner, depth - 1)
            except _TooDeep as exc:
                exc.parts.append(label)
                raise


def _too_deep(path: str) -> str:
    where = path if len(path) <= 60 else path[:60] + "..."
    return f"{where or 'value'}: nested more than {MAX_DEPTH} levels deep"


def integer_problem(value: int, bounds: tuple[int, int]) -> str | None:
    """Why the whole number ``value`` is outside ``bounds`` (:data:`INT32`, :data:`INT64`, :data:`JSON_INT`), or None.

    >>> integer_problem(7, INT32), integer_problem(-(2**40), INT32)
    (None, '-1099511627776 is out of range (-2147483648 to 2147483647)')
    >>> integer_problem(10**5000, JSON_INT)
    'a number of about 5001 digits is out of range (-9223372036854775808 to 18446744073709551615)'
    """
    low, high = bounds
    if low <= value <= high:
        return None
    return f"{shown_integer(value)} is out of range ({low} to {high})"


def shown_integer(value: int) -> str:
    """A whole number for a message: its digits, or their count when there are too many to show."""
    if value.bit_length() <= 256:
        return str(value)
    return f"a number of about {math.floor(value.bit_length() * math.log10(2)) + 1} digits"


def check_length(text: str, field: str, column: str) -> str:
    """``text`` when it fits the store's column ``column`` (a key of :data:`TEXT_COLUMNS`); else ``ItemRejected``."""
    limit = TEXT_COLUMNS[column]
    if len(text) > limit:
        raise ItemRejected(f"{field}: {len(text)} characters, more than the {limit} it may have")
    return text


def id_problem(source_id: str, event_id: str) -> str | None:
    """Why an item's id (and the event id made of it) does not fit the store, or ``None``."""
    if len(source_id) > MAX_SOURCE_ID:
        return f"{len(source_id)} characters, more than the {MAX_SOURCE_ID} an id may have"
    if len(event_id) > MAX_EVENT_ID:
        return f"the event id {event_id[:40]!r}... has {len(event_id)} characters, more than {MAX_EVENT_ID}"
    return None


# --------------------------------------------------------------------------- times


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


def _offset_text(offset: timedelta) -> str:
    """``-07:00`` for seven hours west of UTC."""
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _clock(when: datetime) -> str:
    return when.strftime("%H:%M:%S" if when.second else "%H:%M")


def _shown(naive: datetime) -> str:
    return naive.isoformat(timespec="seconds" if naive.second or naive.microsecond else "minutes")


def wall_clock_instant(naive: datetime, zone: tzinfo) -> datetime:
    """The instant (UTC) the clocks in ``zone`` pass ``naive``, for times that recur (a weekly schedule's
    hours), where refusing as :func:`local_time` does is no answer.

    In a DST gap that is the change itself: a window ``00:00-02:30`` on the night the clocks jump from
    02:00 to 03:00 ends at the jump (zoneinfo's own reading, the offset from before the change, would
    end it at 03:30, half an hour late). Shown twice (a fold): the first time.
    """
    early, late = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    before, after = early.utcoffset(), late.utcoffset()
    if before is None or after is None or early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return early.astimezone(UTC)  # no change near, or a fold: the first time the clocks show it
    return _change_instant(naive, zone, before, after)


def _change_instant(naive: datetime, zone: tzinfo, before: timedelta, after: timedelta) -> datetime:
    """The instant (UTC, to the second) of the offset change around ``naive``.

    The change lies between ``naive - max(offsets)`` and ``naive - min(offsets)`` (UTC); it is
    found by bisection.
    """
    low = (naive - max(before, after)).replace(tzinfo=UTC)
    high = (naive - min(before, after)).replace(tzinfo=UTC)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def _transition(naive: datetime, zone: tzinfo, before: timedelta, after: timedelta) -> tuple[str, str]:
    """The wall clock just before and just after the offset change around ``naive``: ("02:00", "03:00")."""
    change = _change_instant(naive, zone, before, after)
    was, became = (change + before).replace(tzinfo=None), (change + after).replace(tzinfo=None)
    if was.date() != became.date():  # a change of a day or more (Samoa skipped 2011-12-30)
        return _shown(was), _shown(became)
    return _clock(was), _clock(became)


def local_time(naive: datetime, zone: tzinfo, field: str) -> datetime:
    """``naive`` as a local time in ``zone``; refused when the clocks skip it (DST gap) or show it twice (fold).

    zoneinfo gives a gap or fold time two offsets (``fold=0``: the one before the change,
    ``fold=1``: the one after); a gap time does not survive a round trip through UTC, a fold
    time does. Either way the instant is unclear, and guessing would move the event by the size
    of the change, so the time is refused with the offsets that would make it clear.
    """
    early, late = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    before, after = early.utcoffset(), late.utcoffset()
    if before is None or after is None or before == after:
        return early
    name, shown = _zone_name(zone), _shown(naive)
    was, became = _transition(naive, zone, before, after)
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise ItemRejected(f"{field}: {shown} does not exist in {name}: the clocks skip from {was} to {became}; "
                           "give an offset")
    raise ItemRejected(
        f"{field}: {shown} is ambiguous in {name}: the clocks go back from {was} to {became}, so it happens twice "
        f"({_offset_text(before)}, then {_offset_text(after)}); give an offset, e.g. {shown}{_offset_text(before)}"
    )


def _check_range(when: datetime, field: str, shown: str) -> None:
    if not EARLIEST <= when < LATEST:
        raise ItemRejected(f"{field}: {shown} is outside {TIME_RANGE}")


def parse_time(value: str | datetime | None, field: str, zone: tzinfo) -> datetime | None:
    """An ISO 8601 time; without an offset it is local time in ``zone``.

    Raises
    ------
    ItemRejected
        Naming ``field``: not ISO 8601; a local time that does not exist in ``zone`` (the clocks
        skip it) or exists twice (the clocks go back over it), both with the advice to give an
        offset; a time outside :data:`TIME_RANGE`.

    >>> from zoneinfo import ZoneInfo
    >>> parse_time("2026-12-01T08:00:00", "start", ZoneInfo("America/New_York")).isoformat()
    '2026-12-01T08:00:00-05:00'
    >>> try:
    ...     parse_time("2026-03-08T02:30", "start", ZoneInfo("America/Los_Angeles"))
    ... except ItemRejected as exc:
    ...     print(exc.message.replace("; ", ";\\n"))
    start: 2026-03-08T02:30 does not exist in America/Los_Angeles: the clocks skip from 02:00 to 03:00;
    give an offset
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when, shown = value, value.isoformat()
    elif isinstance(value, str):
        text = value.strip().replace(" ", "T", 1) if "T" not in value else value.strip()
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ItemRejected(f"{field}: {value!r} is not an ISO 8601 time (2026-12-01T08:00, the city's time, "
                               "or with an offset: 2026-12-01T16:00:00Z)") from None
        shown = repr(value)
    else:
        raise ItemRejected(f"{field}: expected an ISO 8601 time, got {type(value).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        _check_range(when.replace(tzinfo=zone), field, shown)  # before any conversion, which could overflow
        return local_time(when.replace(tzinfo=None), zone, field)
    _check_range(when, field, shown)
    return when


# --------------------------------------------------------------------------- schedules


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _split_hint(day: str, start: int, end: int) -> str:
    late, early = f"{_hhmm(start)}-23:59", f"00:00-{_hhmm(end)}"
    if day == "everyday":
        return f"everyday={late},{early}"
    if day in SCHEDULE_DAYS:
        following = SCHEDULE_DAYS[1:][SCHEDULE_DAYS[1:].index(day) - 6]
        return f"{day}={late} and {following}={early}"
    return f"{late} and {early}"


def _windows(day: str, hours: str) -> tuple[list[tuple[int, int]], list[str]]:
    """The windows of one day's hours as (start, end) minutes, sorted, and what is wrong with them."""
    name = day if day in SCHEDULE_DAYS else repr(day)
    parts = "".join(hours.split()).split(",")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing comma, as the XSD's pattern allows
    spans: list[tuple[int, int]] = []
    problems: list[str] = []
    for part in parts:
        match = _WINDOW.fullmatch(part)
        if match is None:
            problems.append(f"schedule: {name} {part!r} is not a window HH:MM-HH:MM")
            continue
        h1, m1, h2, m2 = (int(number) for number in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            hint = "; write 23:59 for the end of the day" if (h2, m2) == (24, 0) and h1 < 24 and m1 < 60 else ""
            problems.append(f"schedule: {name} {part} is not a time window within 00:00-23:59{hint}")
            continue
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            problems.append(f"schedule: {name} {part} is empty (it ends when it starts)")
        elif start > end:
            problems.append(f"schedule: {name} {part} crosses midnight; write an overnight window as two: "
                            f"{_split_hint(day, start, end)}")
        else:
            spans.append((start, end))
    spans.sort()
    for (start1, end1), (start2, end2) in pairwise(spans):
        if start2 < end1:
            problems.append(f"schedule: {name} {_hhmm(start1)}-{_hhmm(end1)} and {_hhmm(start2)}-{_hhmm(end2)} "
                            "overlap")
    return spans, problems


def schedule_problems(day: str, hours: str) -> list[str]:
    """What is wrong with one day's schedule windows; empty when nothing is.

    A day's hours are windows ``HH:MM-HH:MM`` separated by commas (the hour may have one
    digit, as cifsv2.xsd allows, and whitespace is ignored). Every clock time lies within
    00:00-23:59 (there is no 24:00: a window to the end of the day ends at 23:59), a window
    starts before it ends, and the windows of a day do not overlap (they may touch). **A window
    that crosses midnight is refused** with the advice to write it as two windows, the second
    on the next day (``monday=22:00-23:59`` and ``tuesday=00:00-06:00``; for ``everyday``,
    ``everyday=22:00-23:59,00:00-06:00``): CIFS does not say how Waze reads ``22:00-06:00``.

    Used by :func:`feeds.city.city_event` at entry and by :func:`feeds.cifs.check_cifs_rules` at publish,
    so the two agree.

    >>> schedule_problems("monday", "08:00-12:00,13:00-17:00")
    []
    >>> schedule_problems("monday", "25:00-26:00")
    ['schedule: monday 25:00-26:00 is not a time window within 00:00-23:59']
    >>> print(*schedule_problems("friday", "22:00-06:00")[0].split("; "), sep="\\n")
    schedule: friday 22:00-06:00 crosses midnight
    write an overnight window as two: friday=22:00-23:59 and saturday=00:00-06:00
    """
    return _windows(day, hours)[1]


def schedule_windows(day: str, hours: str) -> list[tuple[int, int]]:
    """The valid windows of one day's hours as (start, end) minutes after midnight, sorted; what
    :func:`schedule_problems` refuses is left out (a stored schedule has none).

    >>> schedule_windows("monday", "13:00-17:00, 8:00-12:00")
    [(480, 720), (780, 1020)]
    """
    return _windows(day, hours)[0]


def weekly_schedule(value: Mapping[str, str] | None) -> dict[str, str] | None:
    """The schedule with days in the XSD's order and each day's windows as sorted ``HH:MM-HH:MM``."""
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise ItemRejected(f"schedule: expected an object of day -> hours, got {type(value).__name__}")
    schedule: dict[str, str] = {}
    for day, hours in value.items():
        key = str(day).strip().lower()
        if key not in SCHEDULE_DAYS:
            raise ItemRejected(f"schedule: unknown day {day!r} (everyday, monday ... sunday)")
        if key in schedule:
            raise ItemRejected(f"schedule: {key} is given twice")
        if not isinstance(hours, str):
            raise ItemRejected(f"schedule: {key} hours must be text 'HH:MM-HH:MM[,HH:MM-HH:MM]', "
                               f"got {type(hours).__name__}")
        spans, problems = _windows(key, hours)
        if problems:
            raise ItemRejected(problems[0])
        schedule[key] = ",".join(f"{_hhmm(start)}-{_hhmm(end)}" for start, end in spans)
    return {day: schedule[day] for day in SCHEDULE_DAYS if day in schedule}  # the XSD's order
