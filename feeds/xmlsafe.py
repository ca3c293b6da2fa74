"""Reading XML from outside, safely: no DTD, no entity expansion, no network, no huge trees.

Every XML payload the broker reads (GeoRSS, CIFS, the validator's input) comes through here. A
document that declares a DOCTYPE or an ENTITY is refused outright rather than parsed with the
declarations ignored: an external entity or a billion-laughs expansion never gets a chance.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from exchange.errors import MalformedPayload

__all__ = [
    "REFUSED", "declares_a_dtd", "html_page", "looks_like_xml", "parse_untrusted", "safe_parser", "syntax_error_text",
]

REFUSED = "XML with a DOCTYPE or ENTITY declaration is refused (entities are never expanded)"


def safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


_XML_STARTS = (
    b"\xef\xbb\xbf",  # UTF-8 byte order mark
    b"\xff\xfe", b"\xfe\xff",  # UTF-16 (and UTF-32 LE) byte order marks
    b"\x00\x00\xfe\xff",  # UTF-32 BE byte order mark
    b"<\x00", b"\x00<",  # UTF-16 without a mark, LE and BE ("<\x00\x00\x00", UTF-32 LE, starts the same)
    b"\x00\x00\x00<",  # UTF-32 BE without a mark
)


def looks_like_xml(data: bytes) -> bool:
    """Whether ``data`` starts as an XML document does, in any encoding XML allows (a byte order
    mark, or "<" in UTF-8, UTF-16 or UTF-32): the parser then reads the encoding.

    >>> looks_like_xml(b"  <incidents/>"), looks_like_xml("<a/>".encode("utf-16")), looks_like_xml(b"{}")
    (True, True, False)
    """
    stripped = data.lstrip()
    return stripped[:1] == b"<" or data.startswith(_XML_STARTS)


def declares_a_dtd(tree: etree._ElementTree) -> bool:
    """Whether the parsed document has a DOCTYPE (an internal subset, where entities are declared, or
    an external one). Checked on the parsed tree, whatever the bytes' encoding: UTF-16 without a
    BOM or UTF-32 hides ``<!DOCTYPE`` from a byte search, not from the parser."""
    info: Any = tree.docinfo  # the stubs lack doctype and system_url, and type internalDTD as never None
    return info.internalDTD is not None or bool(info.doctype) or bool(info.system_url) or bool(info.public_id)


def parse_untrusted(data: bytes) -> etree._Element:
    """The root element of ``data``.

    Raises
    ------
    MalformedPayload
        A DOCTYPE or ENTITY declaration, or broken XML (with its line).
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:  # the common case, refused before parsing
        raise MalformedPayload(REFUSED)
    try:
        root = etree.fromstring(data, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedPayload(f"malformed XML {syntax_error_text(exc)}") from exc
    if declares_a_dtd(root.getroottree()):
        raise MalformedPayload(REFUSED)
    return root


def syntax_error_text(exc: etree.XMLSyntaxError) -> str:
    """``at line L, column C: what`` for a parse error, on one line. libxml2 ends its message with
    the position as well; it is said once, in front."""
    line, column = exc.position if exc.position else (exc.lineno, 0)
    message = str(exc.msg or exc).strip().splitlines()
    what = _TRAILING_POSITION.sub("", message[0]) if message else "unreadable"
    return f"at line {line}, column {column}: {what}" if column else f"at line {line}: {what}"


_TRAILING_POSITION = re.compile(r",? line \d+, column \d+$")


def html_page(data: bytes) -> str | None:
    """What an HTML page is, where a feed was expected (a login, error or maintenance page answering
    200): ``an HTML page ("Maintenance")``; None for anything else.

    >>> html_page(b"<!DOCTYPE html><html><head><title> Down for   maintenance </title>"), html_page(b"<rss/>")
    ('an HTML page ("Down for maintenance")', None)
    """
    head = data[:4096].lstrip().lower()
    if not head.startswith((b"<!doctype html", b"<html")):
        return None
    title = _TITLE.search(data[:65536])
    if title is None:
        return "an HTML page"
    text = " ".join(title.group(1).decode("utf-8", "replace").split())[:80]
    return f'an HTML page ("{text}")' if text else "an HTML page"


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
