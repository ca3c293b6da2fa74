"""An operator's changes to an imported closure, kept through its source's later versions.

A city source's next version of a row replaces the stored event. Where an operator changed a field
of that event (``closure update``), the source's value at that moment is recorded in the event's
``details.overridden``; when a new version of the row arrives, a field the source left as it was
keeps the operator's value, and a field the source changed takes the source's (it knows something
new) and is no longer the operator's. A DATEX II publisher that bumps its version time, a CSV
export whose other columns change, no longer undo the city's edit.

The fields kept are those a change of which does not move the closure: its times, description,
schedule and the verified flags. A moved closure, another street, type, direction or lanes last
until the source's next version of the row.

Rows here are the ``events`` columns as :func:`exchange.store.event_to_row` makes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from exchange.bulk import loads

__all__ = ["OVERRIDABLE", "details_of", "keep_overrides", "overrides_after", "row_of"]

#: the fields an operator's change of an imported closure keeps: a column, or ``details.<key>``
OVERRIDABLE = ("start_ms", "end_ms", "details.description", "details.schedule", "details.start_date_verified",
               "details.end_date_verified")


def overrides_after(before: Mapping[str, Any], after: dict[str, Any]) -> None:
    """Record in ``after`` (the operator's new version of an imported closure) the source's value of each
    field the operator has now changed; a field changed back to the source's value is the source's again."""
    details = after.get("details")
    if details is None:
        return
    overridden = dict(details_of(before).get("overridden") or {})
    for key in OVERRIDABLE:
        now = _value(after, key)
        if key in overridden:
            if now == overridden[key]:
                del overridden[key]
        elif now != _value(before, key):
            overridden[key] = _value(before, key)
    if overridden:
        details["overridden"] = overridden
    else:
        details.pop("overridden", None)


def keep_overrides(new_row: dict[str, Any], old_row: Mapping[str, Any], *, called_off: bool = False) -> list[str]:
    """The source's new version (``new_row``) with the operator's values kept where the source did not
    change the field; the fields the source did change to another value than the operator's, whose
    operator's value it replaced (named as the commands name them: ``end``, ``description``).

    Of a closure the operator ended or cancelled (``called_off``) the end is the operator's whatever the
    source says; the source's latest end is kept as its value, for ``closure update --reopen``."""
    overridden: Mapping[str, Any] = details_of(old_row).get("overridden") or {}
    if not overridden or new_row.get("details") is None:
        return []
    kept, replaced = {}, []
    for key, source_value in overridden.items():
        if key not in OVERRIDABLE:
            continue
        offered, operators = _value(new_row, key), _value(old_row, key)
        if called_off and key in _ENDING:
            kept[key] = offered
            _set(new_row, key, operators)
        elif offered == source_value:
            _set(new_row, key, operators)
            kept[key] = source_value
        elif offered != operators:  # the source changed it, to something else than the operator's
            replaced.append(SHOWN[key])
    if kept:
        new_row["details"]["overridden"] = kept
    return replaced


#: the fields as the commands name them
SHOWN = {"start_ms": "start", "end_ms": "end", "details.description": "description", "details.schedule": "schedule",
         "details.start_date_verified": "verified start", "details.end_date_verified": "verified end"}
_ENDING = frozenset({"end_ms", "details.end_date_verified"})


def details_of(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A row's ``details`` as a mapping, as stored (JSON text from a raw query) or as made."""
    details = loads(row.get("details"))
    return details if isinstance(details, Mapping) else {}


def _value(row: Mapping[str, Any], key: str) -> Any:
    if key.startswith("details."):
        value = details_of(row).get(key.removeprefix("details."))
        return False if value is None and key.endswith("_verified") else value
    return row.get(key)


def _set(row: dict[str, Any], key: str, value: Any) -> None:
    if not key.startswith("details."):
        row[key] = value
        return
    name = key.removeprefix("details.")
    if value is None:
        row["details"].pop(name, None)
    else:
        row["details"][name] = value


def row_of(columns: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """A stored row (a tuple in ``columns`` order) as the mapping the functions here read."""
    return dict(zip(columns, values, strict=True))
