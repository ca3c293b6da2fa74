"""Generate consecutive Waze partner-feed polls from one real snapshot (deterministic, seeded).

    python -m bench.make_polls OUT_DIR [--polls 20] [--seed 20190322] [--source NYC.json]

``poll-01.json`` is the snapshot itself; every further poll is the previous one 2 minutes later:

* the envelope times (``startTimeMillis``/``endTimeMillis`` and the ``startTime``/``endTime``
  strings, kept in Waze's ``YYYY-MM-DD HH:MM:SS:mmm`` form) move on by 120 000 ms;
* 10-20 % of the items change the way they do between real polls: alerts gain thumbs-up and with
  them reliability/confidence; jams change speed (``speed`` and ``speedKMH`` together), delay,
  level, length and the end of their line; irregularities change speed, delay, travel time and
  their update time;
* 2-3 % of the items disappear and as many new ones appear: copies of existing items, moved by
  ~50-200 m, with new alert uuids / new integer jam and irregularity ids and fresh times.

Items that do not change are written byte for byte as in the previous poll. The files hold test
data derived from the NYC sample: write them to a temp dir or ``bench/out/`` (git-ignored),
never into the repository.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: the real NYC snapshot in the shared test data next to the checkout (``../shared/testdata``)
DEFAULT_SOURCE = (
    Path(__file__).resolve().parents[2] / "shared" / "testdata" / "waze_feed" / "nyc_full_feed_20190322.json"
)
DEFAULT_SEED = 20190322
POLL_INTERVAL_MS = 120_000
KINDS = ("alerts", "jams", "irregularities")


def waze_time(millis: int) -> str:
    """``2019-03-22 21:38:00:000``: UTC, with a colon before the milliseconds (formats.md §1.2)."""
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + f":{millis % 1000:03d}"


def irregularity_time(millis: int) -> str:
    """``Fri Mar 22 21:39:35 +0000 2019``, the form of ``detectionDate``/``updateDate``."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")


def _count(rng: random.Random, total: int, low: float, high: float) -> int:
    """A share of ``total`` drawn in [low, high], rounded at random so small lists average right."""
    wanted = total * rng.uniform(low, high)
    whole = int(wanted)
    return whole + (1 if rng.random() < wanted - whole else 0)


# --------------------------------------------------------------------------- realistic changes


def change_alert(rng: random.Random, alert: dict[str, Any]) -> None:
    alert["nThumbsUp"] = int(alert.get("nThumbsUp") or 0) + 1
    if rng.random() < 0.5:
        alert["reliability"] = min(10, int(alert.get("reliability") or 0) + 1)
    if rng.random() < 0.5:
        alert["confidence"] = min(10, int(alert.get("confidence") or 0) + 1)


def _nudge_line(rng: random.Random, line: list[dict[str, float]]) -> None:
    """Move, add or drop the last point of a line (the head of a jam moves)."""
    if not line:
        return
    last = line[-1]
    action = rng.random()
    if action < 0.5 or len(line) < 3:
        line[-1] = {"x": round(last["x"] + rng.uniform(-0.0003, 0.0003), 6),
                    "y": round(last["y"] + rng.uniform(-0.0003, 0.0003), 6)}
    elif action < 0.75:
        line.append({"x": round(last["x"] + rng.uniform(-0.0005, 0.0005), 6),
                     "y": round(last["y"] + rng.uniform(-0.0005, 0.0005), 6)})
    else:
        line.pop()


def change_jam(rng: random.Random, jam: dict[str, Any]) -> None:
    blocked = jam.get("blockingAlertUuid") or jam.get("level") == 5
    if not blocked:
        kmh = max(1.0, round(float(jam.get("speedKMH") or 10.0) * rng.uniform(0.75, 1.25), 2))
        jam["speedKMH"] = kmh
        jam["speed"] = kmh / 3.6
        jam["delay"] = max(0, int(int(jam.get("delay") or 0) * rng.uniform(0.8, 1.2)) + rng.randint(-15, 15))
        if rng.random() < 0.3:
            jam["level"] = min(4, max(1, int(jam.get("level") or 2) + rng.choice((-1, 1))))
    if blocked or rng.random() < 0.5:
        jam["length"] = max(10, int(int(jam.get("length") or 100) * rng.uniform(0.9, 1.1)))
        if isinstance(jam.get("line"), list):
            _nudge_line(rng, jam["line"])


def change_irregularity(rng: random.Random, irregularity: dict[str, Any], now_ms: int) -> None:
    speed = max(1.0, round(float(irregularity.get("speed") or 10.0) * rng.uniform(0.8, 1.2), 2))
    irregularity["speed"] = speed
    length = int(irregularity.get("length") or 1000)
    seconds = max(1, round(length / speed * 3.6))
    regular = float(irregularity.get("regularSpeed") or speed)
    irregularity["seconds"] = seconds
    irregularity["delaySeconds"] = max(0, seconds - round(length / max(regular, 1.0) * 3.6))
    irregularity["driversCount"] = max(1, int(irregularity.get("driversCount") or 1) + rng.randint(-20, 20))
    updated = now_ms - rng.randint(0, 59_000)
    irregularity["updateDateMillis"] = updated
    irregularity["updateDate"] = irregularity_time(updated)


# --------------------------------------------------------------------------- new items


class Ids:
    """New ids in the style of the feed: UUID text for alerts, growing integers for jams and irregularities."""

    def __init__(self, rng: random.Random, document: dict[str, Any]) -> None:
        self.rng = rng
        self.next_jam = max((int(j["id"]) for j in document.get("jams", []) if "id" in j), default=400_000_000) + 1
        self.next_irregularity = max(
            (int(i["id"]) for i in document.get("irregularities", []) if "id" in i), default=70_000_000
        ) + 1

    def alert(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def jam(self) -> int:
        self.next_jam += self.rng.randint(1, 500)
        return self.next_jam

    def irregularity(self) -> int:
        self.next_irregularity += self.rng.randint(1, 50)
        return self.next_irregularity


def _moved_point(point: dict[str, float], dx: float, dy: float) -> dict[str, float]:
    return {"x": round(point["x"] + dx, 6), "y": round(point["y"] + dy, 6)}


def new_item(rng: random.Random, ids: Ids, kind: str, template: dict[str, Any], now_ms: int) -> dict[str, Any]:
    item = copy.deepcopy(template)
    dx, dy = rng.uniform(-0.002, 0.002), rng.uniform(-0.002, 0.002)
    published = now_ms - rng.randint(0, 110_000)
    if kind == "alerts":
        item["uuid"] = ids.alert()
        item["location"] = _moved_point(item["location"], dx, dy)
        item["pubMillis"] = published
        item["nThumbsUp"] = 0
    elif kind == "jams":
        jam_id = ids.jam()
        item["uuid"] = jam_id
        item["id"] = jam_id
        item["line"] = [_moved_point(p, dx, dy) for p in item.get("line", [])]
        item["pubMillis"] = published
        item.pop("blockingAlertUuid", None)  # a copy is no echo of a closure
        if item.get("level") == 5:
            item["level"], item["delay"], item["speed"], item["speedKMH"] = 4, 120, 2.5, 9.0
    else:
        item["id"] = ids.irregularity()
        item["line"] = [_moved_point(p, dx, dy) for p in item.get("line", [])]
        item["detectionDateMillis"] = published
        item["detectionDate"] = irregularity_time(published)
        item["updateDateMillis"] = now_ms
        item["updateDate"] = irregularity_time(now_ms)
    return item


# --------------------------------------------------------------------------- polls


def next_poll(rng: random.Random, ids: Ids, previous: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """The poll 2 minutes after ``previous`` and its counts (changed, gone, new)."""
    poll = dict(previous)
    for key in ("startTimeMillis", "endTimeMillis"):
        if key in poll:
            poll[key] = int(poll[key]) + POLL_INTERVAL_MS
    if "startTimeMillis" in poll:
        poll["startTime"] = waze_time(poll["startTimeMillis"])
    if "endTimeMillis" in poll:
        poll["endTime"] = waze_time(poll["endTimeMillis"])
    now_ms = int(poll.get("endTimeMillis") or poll.get("startTimeMillis"))
    counts = {"changed": 0, "gone": 0, "new": 0}
    for kind in KINDS:
        if kind not in previous:
            continue
        items = list(previous[kind])
        for position in sorted(rng.sample(range(len(items)), _count(rng, len(items), 0.02, 0.03)), reverse=True):
            del items[position]
            counts["gone"] += 1
        for position in rng.sample(range(len(items)), _count(rng, len(items), 0.10, 0.20)):
            item = copy.deepcopy(items[position])
            if kind == "alerts":
                change_alert(rng, item)
            elif kind == "jams":
                change_jam(rng, item)
            else:
                change_irregularity(rng, item, now_ms)
            items[position] = item
            counts["changed"] += 1
        templates = list(previous[kind])
        for _ in range(_count(rng, len(templates), 0.02, 0.03)):
            items.append(new_item(rng, ids, kind, rng.choice(templates), now_ms))
            counts["new"] += 1
        poll[kind] = items
    return poll, counts


def generate(out_dir: Path, polls: int = 20, seed: int = DEFAULT_SEED, source: Path = DEFAULT_SOURCE,
             *, quiet: bool = False) -> list[Path]:
    """Write ``poll-01.json``..``poll-NN.json`` into ``out_dir``; returns the paths in order."""
    rng = random.Random(seed)
    document = json.loads(source.read_bytes())
    ids = Ids(rng, document)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(polls)))
    paths: list[Path] = []
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    say(f"{'poll':<{width + 10}} {'alerts':>6} {'jams':>5} {'irreg':>5} {'items':>6} "
        f"{'changed':>7} {'gone':>5} {'new':>5}  endTime")
    poll: dict[str, Any] = document
    total_items = 0
    for number in range(1, polls + 1):
        counts = {"changed": 0, "gone": 0, "new": 0}
        if number > 1:
            poll, counts = next_poll(rng, ids, poll)
        path = out_dir / f"poll-{number:0{width}d}.json"
        path.write_text(json.dumps(poll, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
        paths.append(path)
        sizes = [len(poll.get(kind) or []) for kind in KINDS]
        total_items += sum(sizes)
        say(f"{path.name:<{width + 10}} {sizes[0]:>6} {sizes[1]:>5} {sizes[2]:>5} {sum(sizes):>6} "
            f"{counts['changed']:>7} {counts['gone']:>5} {counts['new']:>5}  {poll.get('endTime', '')}")
    say(f"{polls} polls, {total_items} items in all, written to {out_dir}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory for poll-NN.json (created if missing)")
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="the real snapshot to start from (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.polls < 1:
        parser.error("--polls must be at least 1")
    generate(args.out_dir, args.polls, args.seed, args.source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
