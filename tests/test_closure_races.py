"""Two operators changing one closure at once: neither change is lost, whichever commits first.

A command reads the closure, works out its change, then writes it. Each test lets the other command
commit in between (deterministically: at the moment the first has read and not yet written), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from exchange import closures
from exchange.closures import ClosureInput, add_closure, cancel_closure, end_closure, update_closure
from exchange.errors import StoreError, UsageError
from exchange.model import Status
from exchange.schema import revisions
from exchange.store import load_event

ZONE = ZoneInfo("America/Los_Angeles")
Between: TypeAlias = Callable[[Callable[[], Any]], None]
LINE = [(-122.300788, 37.809578), (-122.302087, 37.810233)]


@pytest.fixture
def closure_id(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EXCHANGE_NOW", "2026-03-02T16:00:00+00:00")
    return add_closure(engine, ClosureInput(street="9th Street", points=LINE, start="2026-03-02T07:00:00-08:00",
                                            end="2026-03-05T17:00:00-08:00", description="Water main"),
                       zone=ZONE, placement=None).id


@pytest.fixture
def between(monkeypatch: pytest.MonkeyPatch) -> Iterator[Between]:
    """``between(other)`` runs ``other`` once, just before the next closure change is written."""
    pending: list[Callable[[], Any]] = []
    real_commit = closures._commit

    def commit(*args: Any, **kwargs: Any) -> None:
        if pending:
            pending.pop()()
        real_commit(*args, **kwargs)

    monkeypatch.setattr(closures, "_commit", commit)
    yield pending.append


def status(engine: Engine, closure_id: str) -> tuple[Status, str | None]:
    with engine.connect() as conn:
        found = load_event(conn, closure_id)
    assert found is not None and not isinstance(found, closures.Unreadable)
    details = found.event.details
    return found.event.status, details.description if details else None


def test_an_update_racing_a_cancel_does_not_bring_the_closure_back(engine: Engine, closure_id: str,
                                                                   between: Between) -> None:
    between(lambda: cancel_closure(engine, closure_id, operator="bea", zone=ZONE))
    with pytest.raises(UsageError, match="is cancelled"):
        update_closure(engine, closure_id, {"description": "race"}, zone=ZONE, placement=None, operator="ana")
    assert status(engine, closure_id) == (Status.CANCELLED, "Water main")


def test_an_update_racing_an_end_does_not_undo_it(engine: Engine, closure_id: str,
                                                  between: Between) -> None:
    between(lambda: end_closure(engine, closure_id, operator="bea", zone=ZONE))
    with pytest.raises(UsageError, match="is ended"):
        update_closure(engine, closure_id, {"description": "race"}, zone=ZONE, placement=None, operator="ana")
    assert status(engine, closure_id) == (Status.ENDED, "Water main")


def test_a_cancel_racing_an_update_keeps_both(engine: Engine, closure_id: str,
                                              between: Between) -> None:
    between(lambda: update_closure(engine, closure_id, {"description": "Water main and valve"}, zone=ZONE,
                                   placement=None, operator="ana"))
    cancel_closure(engine, closure_id, operator="bea", zone=ZONE)
    assert status(engine, closure_id) == (Status.CANCELLED, "Water main and valve")
    with engine.connect() as conn:
        written = conn.execute(select(revisions.c.action, revisions.c.operator)
                               .where(revisions.c.event_id == closure_id).order_by(revisions.c.id)).all()
    assert [tuple(row) for row in written] == [("created", None), ("updated", "ana"), ("cancelled", "bea")]


def test_two_updates_of_different_fields_both_hold(engine: Engine, closure_id: str,
                                                   between: Between) -> None:
    between(lambda: update_closure(engine, closure_id, {"description": "Water main and valve"}, zone=ZONE,
                                   placement=None, operator="ana"))
    update_closure(engine, closure_id, {"end": "2026-03-06T17:00:00-08:00"}, zone=ZONE, placement=None,
                   operator="bea")
    with engine.connect() as conn:
        found = load_event(conn, closure_id)
    assert found is not None and not isinstance(found, closures.Unreadable)
    assert found.event.details is not None and found.event.details.description == "Water main and valve"
    assert found.event.end_time is not None and found.event.end_time.isoformat() == "2026-03-07T01:00:00+00:00"


def test_a_closure_that_keeps_changing_is_left_alone_with_a_clear_error(
        engine: Engine, closure_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_commit = closures._commit
    descriptions = iter(f"change {k}" for k in range(100))

    def commit(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(closures, "_commit", real_commit)  # the other command commits for real
        update_closure(engine, closure_id, {"description": next(descriptions)}, zone=ZONE, placement=None,
                       operator="busy")
        monkeypatch.setattr(closures, "_commit", commit)
        real_commit(*args, **kwargs)

    monkeypatch.setattr(closures, "_commit", commit)
    waits: list[float] = []
    monkeypatch.setattr(closures.time, "sleep", waits.append)
    with pytest.raises(StoreError, match="kept changing while this command ran"):
        cancel_closure(engine, closure_id, operator="bea", zone=ZONE)
    assert status(engine, closure_id)[0] is Status.ACTIVE
    # between attempts it waits a random while, longer bounds each time, so two commands retrying
    # together drift apart; none after the last attempt
    assert len(waits) == closures._ATTEMPTS - 1
    assert all(0.0 <= wait <= closures._BACK_OFF_S * 2 ** k for k, wait in enumerate(waits))
