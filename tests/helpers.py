"""Builders for small Waze feeds, so each test states exactly the payload it reconciles."""

from __future__ import annotations

import json
from typing import Any

BASE_MS = 1_772_463_600_000  # 2026-03-02T15:00:00Z
POLL_MS = 120_000


def alert(uuid: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uuid": uuid,
        "type": "ACCIDENT",
        "subtype": "ACCIDENT_MINOR",
        "location": {"x": -122.2841, "y": 37.8093},
        "street": "7th Street",
        "city": "Oakland, CA",
        "country": "US",
        "pubMillis": BASE_MS - 60_000,
        "reliability": 6,
        "confidence": 1,
        "nThumbsUp": 0,
        "reportRating": 3,
        "magvar": 90,
        "roadType": 2,
    }
    record.update(fields)
    return record


def jam(jam_id: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uuid": jam_id,
        "id": jam_id,
        "line": [{"x": -122.2841, "y": 37.8093}, {"x": -122.2830, "y": 37.8095}, {"x": -122.2820, "y": 37.8097}],
        "speed": 3.5,
        "speedKMH": 12.6,
        "length": 250,
        "delay": 60,
        "level": 3,
        "type": "NONE",
        "street": "7th Street",
        "city": "Oakland, CA",
        "country": "US",
        "pubMillis": BASE_MS - 30_000,
        "segments": [{}, {}],
        "turnType": "NONE",
        "roadType": 2,
    }
    record.update(fields)
    return record


def feed(
    poll: int = 0,
    *,
    alerts: list[dict[str, Any]] | None = None,
    jams: list[dict[str, Any]] | None = None,
    irregularities: list[dict[str, Any]] | None = None,
) -> bytes:
    """A feed envelope for poll number ``poll`` (2 minutes apart); an array left as None is absent."""
    start = BASE_MS + poll * POLL_MS
    document: dict[str, Any] = {"startTimeMillis": start, "endTimeMillis": start + 60_000}
    if alerts is not None:
        document["alerts"] = alerts
    if jams is not None:
        document["jams"] = jams
    if irregularities is not None:
        document["irregularities"] = irregularities
    return json.dumps(document).encode()
