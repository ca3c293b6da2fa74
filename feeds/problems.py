"""A finding of a feed check: where, what, and whether it blocks publication.

Shared by the CIFS rules (:mod:`feeds.cifs`), the WZDx checks, the Waze acceptance lint
(:mod:`feeds.lint`) and ``exchange.validation``, so every check reports in one shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Problem", "Severity", "errors_only", "has_errors"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding.

    Attributes
    ----------
    location
        Where it is: ``"line 12: incident 'X-1'"``, ``"$.features[3].geometry"``, ``"event city:1"``.
    message
        What is wrong, in one line.
    severity
        ``"error"`` blocks (the feed or the event is refused), ``"warning"`` only informs.
    holds_back
        An error that publishing always holds back, even when ``publish.hold_back_failing`` is off
        (a closure drawn against its signed direction: publishing it would close the wrong side).

    >>> str(Problem("line 3", "polyline: one point"))
    'error: line 3: polyline: one point'
    """

    location: str
    message: str
    severity: Severity = "error"
    holds_back: bool = False

    def __str__(self) -> str:
        return f"{self.severity}: {self.location}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        """A plain dict, for JSON columns and CLI output."""
        return {"location": self.location, "message": self.message, "severity": self.severity}


def has_errors(problems: Iterable[Problem]) -> bool:
    """True when any finding is an error.

    >>> has_errors([Problem("a", "b", "warning")]), has_errors([Problem("a", "b")])
    (False, True)
    """
    return any(problem.severity == "error" for problem in problems)


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    """The findings that block."""
    return [problem for problem in problems if problem.severity == "error"]
