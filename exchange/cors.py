"""CORS for what anyone may read (the open feeds, the catalogue): any origin, reads only, no credentials.

Partner-only feeds send none of these: a page of another origin then cannot read them, whatever
token its visitor holds.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["OPEN_READ", "PREFLIGHT", "as_headers"]

#: on every answer: any page may read the body and the validators it revalidates with
OPEN_READ: Mapping[str, str] = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": "ETag, Last-Modified, Content-Length",
}

#: the answer to a preflight (OPTIONS): reads with validators and content negotiation, cached a day
PREFLIGHT: Mapping[str, str] = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, HEAD, OPTIONS",
    "access-control-allow-headers": "Accept, Accept-Encoding, If-None-Match, If-Modified-Since, Cache-Control",
    "access-control-max-age": "86400",
}


def as_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs, for an endpoint that sends prepared headers.

    >>> as_headers({"access-control-allow-origin": "*"})
    [(b'access-control-allow-origin', b'*')]
    """
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
