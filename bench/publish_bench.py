"""Publishing benchmark: CIFS XML + WZDx generation and validation for 10,000 city events.

Run from the checkout: ``.venv/bin/python -m bench.publish_bench [--events 10000] [--repeat 3]``

The events are closures and construction zones along the streets of the generated city
(``tests/support/synthetic.py``), with descriptions, schedules on some, both directions on most. One run
measures, for the same events: rendering CIFS XML, validating it (cifsv2.xsd + the rules the XSD
does not check), rendering WZDx 4.2 and validating it (official schemas), first in a fresh process
state ("cold": schemas compiled on first use) and then again ("warm", what a daemon publishing
every few minutes pays). The target of the outbound issue: CIFS XML + WZDx, generation and
validation together, under 1 s for 10,000 events.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.machine import machine_info
from exchange.model import Event
from feeds.city import city_event
from tests.support.synthetic import make_city

OUT = Path(__file__).parent / "out"
ZONE = ZoneInfo("America/Los_Angeles")


def make_events(n: int) -> list[Event]:
    city = make_city(seed=7, blocks=80)
    edges = [edge for edge in city.directed_edges if edge.name and edge.length_m >= 40]
    start = datetime(2026, 12, 1, 8, 0, tzinfo=ZONE)
    events = []
    for i in range(n):
        edge = edges[i % len(edges)]
        points = [city.to_lonlat(float(x), float(y)) for x, y in edge.coords_m]
        closure = i % 3 != 0
        events.append(city_event(
            "city", f"bench-{i:05d}", type="ROAD_CLOSED" if closure else "CONSTRUCTION",
            subtype="ROAD_CLOSED_CONSTRUCTION" if closure else None, street=edge.name or "Main Street",
            coordinates=points, zone=ZONE, direction="ONE_DIRECTION" if edge.oneway else "BOTH_DIRECTIONS",
            start=start + timedelta(hours=i % 48), end=start + timedelta(days=3 + i % 10),
            description=f"Utility work & paving, phase {i % 7}",
            schedule={"monday": "08:00-17:00", "friday": "08:00-12:00"} if i % 5 == 0 else None,
            lane_impact={"total_closed_lanes": 1, "roadside": "RIGHT"} if not closure else None,
        ))
    return events


def run_once(events: list[Event], generated: datetime) -> dict[str, float]:
    from exchange.validation import validate_cifs_xml, validate_wzdx
    from feeds.cifs import render_cifs_xml
    from feeds.wzdx import render_wzdx

    feed_info = {"publisher": "Bench City", "data_source_id": "bench"}
    timings: dict[str, float] = {}
    gc_was = gc.isenabled()
    gc.disable()  # as exchange.publish does while feeds are built
    try:
        t0 = time.perf_counter()
        xml = render_cifs_xml(events, zone=ZONE, generated=generated)
        t1 = time.perf_counter()
        xml_problems = [p for p in validate_cifs_xml(xml) if p.severity == "error"]
        t2 = time.perf_counter()
        wzdx = render_wzdx(events, feed_info=feed_info, generated=generated, zone=ZONE)
        t3 = time.perf_counter()
        wzdx_problems = [p for p in validate_wzdx(wzdx) if p.severity == "error"]
        t4 = time.perf_counter()
    finally:
        if gc_was:
            gc.enable()
    if xml_problems or wzdx_problems:
        raise SystemExit(f"invalid output: {(xml_problems + wzdx_problems)[:3]}")
    timings.update(cifs_render=t1 - t0, cifs_validate=t2 - t1, wzdx_render=t3 - t2, wzdx_validate=t4 - t3,
                   total=t4 - t0, cifs_bytes=len(xml), wzdx_bytes=len(wzdx),
                   wzdx_features=len(json.loads(wzdx)["features"]))
    return timings


def pipeline(events: list[Event]) -> dict[str, float]:
    """``exchange.publish.publish`` end to end on a SQLite store holding the events: the first
    publication, an unchanged one, one after a single change, and one with a single event whose
    renderer fails (held back alone: the halving search)."""
    import tempfile

    import exchange.publish as publishing
    from exchange.bulk import Bulk
    from exchange.config import Config
    from exchange.db import open_store, writing
    from exchange.schema import events as events_table
    from exchange.store import EVENT_COLUMNS, event_to_row, event_values
    from exchange.targets import Target

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        engine = open_store(f"sqlite:///{home}/bench.db")
        with writing(engine) as conn:
            Bulk(conn).insert(events_table, EVENT_COLUMNS,
                              [event_values(event_to_row(e, now_ms=0), EVENT_COLUMNS) for e in events])
        config = Config.model_validate({"timezone": "America/Los_Angeles"})

        def timed(name: str) -> None:
            started = time.perf_counter()
            result = publishing.publish(engine, config)
            timings[name] = time.perf_counter() - started
            timings[f"{name}_held_back"] = len(result.held_back)

        timed("first")
        timed("unchanged")
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE events SET street = 'Changed Street' WHERE id = ?", (events[0].id,))
        timed("one_change")
        broken = events[len(events) // 3].id
        original = publishing.enabled_targets  # type: ignore[attr-defined]  # patched where publish() reads it

        def faulty(target: Target) -> Target:
            def render(chosen: Any, cfg: Config, generated: datetime) -> dict[str, bytes]:
                if any(e.street == "Broken Street" for e in chosen):
                    raise RuntimeError("injected renderer fault")
                return target.render(chosen, cfg, generated)

            return dataclasses.replace(target, render=render)

        publishing.enabled_targets = lambda cfg: [faulty(t) for t in original(cfg)]  # type: ignore[attr-defined,assignment]
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("UPDATE events SET street = 'Broken Street' WHERE id = ?", (broken,))
            timed("one_failing")
        finally:
            publishing.enabled_targets = original  # type: ignore[attr-defined]
        engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = make_events(args.events)
    generated = datetime(2026, 11, 22, tzinfo=UTC)
    cold = run_once(events, generated)
    warm = [run_once(events, generated) for _ in range(args.repeat)]
    median = {key: statistics.median(run[key] for run in warm) for key in warm[0]}
    print(f"\n## Publishing {args.events} events ({datetime.now(UTC).isoformat(timespec='seconds')})\n")
    info = machine_info()
    print(f"Machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, commit {info['commit']}; "
          f"{median['wzdx_features']:.0f} WZDx features, CIFS {median['cifs_bytes'] / 1e6:.1f} MB, "
          f"WZDx {median['wzdx_bytes'] / 1e6:.1f} MB\n")
    print("| step | cold s | warm s (median) |\n|---|---:|---:|")
    for key in ("cifs_render", "cifs_validate", "wzdx_render", "wzdx_validate", "total"):
        print(f"| {key} | {cold[key]:.3f} | {median[key]:.3f} |")
    steps = pipeline(events)
    print(f"\n| publish() on a SQLite store of {args.events} closures | s |\n|---|---:|")
    for key in ("first", "unchanged", "one_change", "one_failing"):
        print(f"| {key} ({steps[key + '_held_back']:.0f} held back) | {steps[key]:.3f} |")
    verdict = "PASS" if median["total"] < 1.0 else "FAIL"
    print(f"\n- target < 1 s for generation + validation of both feeds: warm {median['total']:.3f} s -> {verdict}; "
          f"cold (schemas compiled on first use) {cold['total']:.3f} s")
    OUT.mkdir(exist_ok=True)
    (OUT / "publish.json").write_text(
        json.dumps({"machine": info, "cold": cold, "warm": warm, "pipeline": steps, "events": args.events}, indent=2)
    )


if __name__ == "__main__":
    main()
