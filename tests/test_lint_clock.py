"""``inspect feed`` lints with the current time: an open-ended closure started long ago is flagged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.support.helpers import Cli
from tests.support.paths import DEMO

NINTH = "37.809578 -122.300788 37.810233 -122.302087"


def test_inspect_feed_warns_of_an_open_ended_closure_started_weeks_ago(cli: Cli) -> None:
    start = (datetime.now(UTC) - timedelta(days=20, hours=1)).astimezone().isoformat(timespec="seconds")
    added = cli("--config", str(DEMO), "closure", "add", "--street", "9th Street", "--polyline", NINTH,
                "--type", "ROAD_CLOSED", "--subtype", "ROAD_CLOSED_CONSTRUCTION", "--direction", "BOTH_DIRECTIONS",
                "--start", start, "--description", "Utility work")
    assert added.code == 0, added
    rows = json.loads(cli("--config", str(DEMO), "inspect", "feed", "--format", "json").out)
    assert [row["id"] for row in rows] == [added.out.strip()]
    assert "started 20 days ago with no end: Waze may have expired it; give an end" in rows[0]["warnings"]
    assert rows[0]["blocking"] is None
