"""Reading the weighted lists of HTTP request headers (``Accept``, ``Accept-Encoding``; RFC 9110 section 12.4.2)."""

from __future__ import annotations

__all__ = ["weighted"]


def weighted(value: str) -> list[tuple[str, float]]:
    """Each member of a weighted list, lower-cased, with its quality (1 when not given, 0 when unreadable).

    >>> weighted("gzip, br;q=0.5, *;q=oops")
    [('gzip', 1.0), ('br', 0.5), ('*', 0.0)]
    """
    found: list[tuple[str, float]] = []
    for part in value.split(","):
        member, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, number = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(number)
                except ValueError:
                    q = 0.0
        found.append((member.strip().lower(), q))
    return found
