"""The GeoRSS XML variant of the Waze feed (``format=2``), read into the JSON feed's shape.

No real sample of this variant is available to the project; the layout follows formats.md §1.8
(RSS 2.0, ``linqmap:*`` fields, ``<title>`` naming the record kind, ``georss:point`` and
``georss:line`` in **"lat lon"** order). Elements without the ``linqmap:`` prefix (other than
RSS's own) are read too, since one public parser reads irregularity dates that way.

The parser is hardened: no DTD, no entity expansion, no network. A payload that declares a
DOCTYPE or ENTITY is refused outright rather than parsed with the declarations ignored.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

from lxml import etree

from exchange.errors import MalformedPayload
from feeds.xmlsafe import parse_untrusted

__all__ = ["georss_to_document"]

GEORSS = "http://www.georss.org/georss"
LINQMAP = "http://www.linqmap.com"
_RSS_ELEMENTS = frozenset({"title", "link", "description", "guid", "pubDate", "category", "author", "comments"})
_KIND_KEY = {"alert": "alerts", "jam": "jams", "traffic": "jams", "irregularity": "irregularities"}
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_MAX_INT_DIGITS = 18
#: The envelope key under which items of a kind the feed does not carry are listed, by their title,
#: so that they are counted as skipped rather than vanishing unseen.
OTHER_ITEMS = "_other_items"


def georss_to_document(data: bytes) -> dict[str, Any]:
    """Turn a GeoRSS feed into the JSON envelope: ``{"alerts": [...], "jams": [...], ...}``.

    Raises
    ------
    MalformedPayload
        Broken XML, a DOCTYPE/ENTITY declaration, or a document that is not an RSS channel.
    """
    root = parse_untrusted(data)
    channel = root.find("channel")
    if etree.QName(root).localname != "rss" or channel is None:
        raise MalformedPayload("not a Waze GeoRSS feed: expected <rss><channel>")

    document: dict[str, Any] = {"alerts": [], "jams": [], "irregularities": []}
    for name in ("startTimeMillis", "endTimeMillis"):
        value = channel.findtext(f"{{{LINQMAP}}}{name}")
        if value is not None and value.strip():
            document[name] = _scalar(value)
    if "endTimeMillis" not in document:
        built = channel.findtext("lastBuildDate") or channel.findtext("pubDate")
        if built:
            document["endTimeMillis"] = _rfc822_millis(built)

    others: list[str] = []
    for item in channel.iterfind("item"):
        title = (item.findtext("title") or "").strip()
        key = _KIND_KEY.get(title.lower())
        if key is None:
            others.append(title)  # not ours to reject or to keep, but counted as skipped
            continue
        document[key].append(_record(item))
    if others:
        document[OTHER_ITEMS] = others
    return document


def _record(item: etree._Element) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for child in item.iterchildren(etree.Element):  # elements only: no comments or PIs
        qname = etree.QName(child)
        text = (child.text or "").strip()
        if qname.namespace == GEORSS:
            if qname.localname == "point":
                record["location"] = _point(text)
            elif qname.localname == "line":
                record["line"] = _points(text)
        elif qname.namespace == LINQMAP or (not qname.namespace and qname.localname not in _RSS_ELEMENTS):
            record[qname.localname] = _scalar(text)
    if "pubMillis" not in record:
        published = item.findtext("pubDate")
        if published:
            record["pubMillis"] = _rfc822_millis(published)
    return record


def _points(text: str) -> list[dict[str, Any]]:
    """``"lat lon lat lon ..."`` into ``[{"x": lon, "y": lat}, ...]``; an odd leftover (a latitude with
    no longitude) is kept as a point without ``x`` (the longitude), so that the item is rejected
    naming it."""
    values = text.replace(",", " ").split()
    points: list[dict[str, Any]] = []
    for lat, lon in zip(values[0::2], values[1::2], strict=False):
        points.append({"x": _scalar(lon), "y": _scalar(lat)})
    if len(values) % 2:
        points.append({"y": _scalar(values[-1])})
    return points


def _point(text: str) -> dict[str, Any] | None:
    points = _points(text)
    return points[0] if points else None


def _scalar(text: str) -> Any:
    """Numbers as numbers (the JSON feed's types); everything else as the text it is."""
    if _NUMBER.fullmatch(text):
        if "." in text or "e" in text or "E" in text:
            return float(text)
        if len(text.lstrip("-")) <= _MAX_INT_DIGITS:
            return int(text)
    return text


def _rfc822_millis(text: str) -> int | str:
    try:
        return round(parsedate_to_datetime(text.strip()).timestamp() * 1000)
    except (TypeError, ValueError, IndexError):
        return text
