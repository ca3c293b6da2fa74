"""Connected Work Zones (CWZ) 1.0 out: WZDx 4.2 with the differences CWZ made.

CWZ 1.0 (ITE/AASHTO/NEMA, December 2024) is the successor of WZDx 4.2, and the same document with
these differences (``../shared/testdata/cwz/DIFF_WZDx4.2_vs_CWZ1.0.txt``): ``feed_info.license``
(the CC0 URL only) and ``update_frequency`` required, each data source's ``update_date`` and
``update_frequency`` required, the four ``is_*_verified`` booleans required on every work zone
(the ``*_accuracy`` alternatives removed), MultiPoint geometry replaced by Point, mileposts replaced
by reference posts with a unit, and some enum values removed (event type ``restriction``, lane type
``center-left-turn-lane``, work type ``maintenance``, worker presence ``scheduled`` ...).

* :func:`render_cwz` builds the WZDx 4.2 document (:func:`feeds.wzdx.wzdx_document`) and rewrites
  what CWZ changed; nothing of the road events is built twice.
* :func:`check_cwz` checks a CWZ work zone feed without the CWZ schemas (they come from a GPL-3.0
  repository and do not ship): the differences above as code, plus the shipped WZDx 4.2 schemas run
  on the document as WZDx 4.2 would spell it (a check the caller passes in: ``feeds/`` reads no files).
* :func:`cwz_enabled` says whether a city may publish CWZ at all: only when its feeds are CC0.

The verified flags are the event's (``CityDetails``): true only on evidence from the source (an
imported WZDx/CWZ event that says so, an operator's ``--verified-start``/``--verified-end``), never
from Waze: a Waze closure on a published closure is usually the city's own CIFS coming back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

import orjson

from exchange.errors import UsageError
from exchange.model import Category, Event
from feeds.cifs import Attribution
from feeds.problems import Problem
from feeds.wzdx import (
    CC0_LICENSE,
    DEFAULT_HORIZON,
    WZDX_KEY,
    WZDX_VERSION,
    work_zone_losses,
    work_zone_problems,
    wzdx_document,
)

__all__ = ["CWZ_VERSION", "UNSTATED_FREQUENCY", "check_cwz", "cwz_enabled", "losses_for", "problems_for", "render_cwz"]

CWZ_VERSION = "1.0"
#: ``update_frequency`` when nobody stated one: CWZ lowered the minimum from 1 to -1 for it (our reading;
#: the standard gives no meaning to -1 in its schema text)
UNSTATED_FREQUENCY = -1
#: the unit CWZ's reference posts get when they were WZDx mileposts (mile markers)
_MILEPOST_UNIT = "miles"
_MILEPOSTS = {"beginning_milepost": "beginning_reference_post", "ending_milepost": "ending_reference_post"}
_VERIFIED_FLAGS = ("is_start_position_verified", "is_end_position_verified", "is_start_date_verified",
                   "is_end_date_verified")
_DETOUR_FLAGS = ("is_start_date_verified", "is_end_date_verified")
#: WZDx 4.2 fields CWZ removed (the CWZ schema does not forbid unknown members: a warning)
_REMOVED_PROPERTIES = ("beginning_accuracy", "ending_accuracy", "start_date_accuracy", "end_date_accuracy",
                       "event_status", "beginning_milepost", "ending_milepost")
_REMOVED_SOURCE_FIELDS = ("location_verify_method", "lrs_type", "lrs_url")
#: enum values WZDx 4.2 had and CWZ 1.0 removed, by where they occur
_REMOVED_EVENT_TYPES = frozenset({"restriction"})
_REMOVED_LANE_TYPES = frozenset({"center-left-turn-lane"})
_REMOVED_WORK_TYPES = frozenset({"maintenance"})
_REMOVED_PRESENCE_DEFINITIONS = frozenset({"mobile-equipment-in-work-zone-not-working"})
_REMOVED_PRESENCE_METHODS = frozenset({"arrow-board-present", "cones-present", "scheduled"})
#: enum values CWZ 1.0 added: the WZDx 4.2 schemas would refuse them, so the 4.2 view leaves them out
_ADDED_WORK_TYPES = frozenset({"non-encroachment"})
_ADDED_PRESENCE_DEFINITIONS = frozenset({"mobile-equipment-in-work-zone-not-moving"})
_ADDED_PRESENCE_METHODS = frozenset({"other"})


def cwz_enabled(license: str | None, *, on_openstreetmap: bool = True) -> tuple[bool, str]:
    """Whether the CWZ feed may be published under ``publish.license``, and why (one line);
    ``on_openstreetmap``: the closures are placed on an OpenStreetMap network (a [network] section).

    >>> cwz_enabled("https://creativecommons.org/publicdomain/zero/1.0/")[0]
    True
    >>> print(cwz_enabled(None)[1])  # doctest: +ELLIPSIS
    CWZ feed off: publish.license is not CC0 (not set); CWZ allows only CC0. Closures routed on OpenStreetMap ...
    >>> print(cwz_enabled(None, on_openstreetmap=False)[1])
    CWZ feed off: publish.license is not CC0 (not set); CWZ allows only CC0
    """
    if license is not None and license.rstrip("/") == CC0_LICENSE.rstrip("/"):
        return True, f"CWZ feed on: publish.license is CC0 ({CC0_LICENSE})"
    shown = "not set" if license is None else repr(license)
    why = f"CWZ feed off: publish.license is not CC0 ({shown}); CWZ allows only CC0"
    if on_openstreetmap:
        why += ". Closures routed on OpenStreetMap carry ODbL-derived geometry and cannot be declared CC0"
    return False, why


# --------------------------------------------------------------------------- rendering


def _cwz_feature(feature: dict[str, Any]) -> dict[str, Any]:
    """One WZDx 4.2 road event as CWZ 1.0 writes it."""
    geometry = feature["geometry"]
    if geometry["type"] == "MultiPoint":  # a point work zone: CWZ has Point instead
        feature["geometry"] = {"type": "Point", "coordinates": geometry["coordinates"][0]}
    properties = feature["properties"]
    for old, new in _MILEPOSTS.items():
        if old in properties:
            properties[new] = properties.pop(old)
            # CWZ declares "reference_post_unit " (a trailing space, a defect of 1.0) but requires
            # "reference_post_unit" beside a reference post: write the one its rule asks for
            properties["reference_post_unit"] = _MILEPOST_UNIT
    work = [kind for kind in properties.get("types_of_work", ()) if kind["type_name"] not in _REMOVED_WORK_TYPES]
    if work:
        properties["types_of_work"] = work
    else:
        properties.pop("types_of_work", None)
    for lane in properties.get("lanes", ()):
        lane.pop("lane_number", None)
        if lane["type"] in _REMOVED_LANE_TYPES:
            lane["type"] = "general"
    return feature


def render_cwz(
    events: Sequence[Event], *, feed_info: Mapping[str, Any], generated: datetime, zone: tzinfo | None = None,
    horizon: timedelta = DEFAULT_HORIZON, attribution: Attribution | None = None,
) -> bytes:
    """A CWZ 1.0 WorkZoneFeed of the closures and road works: :func:`feeds.wzdx.render_wzdx`'s
    road events (the same ids, occurrences and flags) with what CWZ changed.

    ``feed_info`` is WZDx's (see :func:`feeds.wzdx.render_wzdx`) and must carry ``license``, the CC0
    URL; ``update_frequency`` (seconds) is the feed's and our data source's, :data:`UNSTATED_FREQUENCY`
    when not given (an imported data source's is always unstated). Each data source's
    ``update_date`` is ``generated``: the time our copy of it was published.

    Raises
    ------
    UsageError
        No CC0 licence (the reason :func:`cwz_enabled` gives), or what :func:`feeds.wzdx.render_wzdx` refuses.
    """
    enabled, reason = cwz_enabled(feed_info.get("license"))
    if not enabled:
        raise UsageError(reason)
    document = wzdx_document(events, feed_info=feed_info, generated=generated, zone=zone, horizon=horizon,
                             attribution=attribution)
    info = document["feed_info"]
    info["version"] = CWZ_VERSION
    frequency = feed_info.get("update_frequency")
    info["update_frequency"] = frequency if isinstance(frequency, int) else UNSTATED_FREQUENCY
    for position, source in enumerate(info["data_sources"]):
        for field in _REMOVED_SOURCE_FIELDS:
            source.pop(field, None)
        source.setdefault("update_date", info["update_date"])
        # the first is ours (feeds.wzdx lists imported sources after it)
        source.setdefault("update_frequency", info["update_frequency"] if position == 0 else UNSTATED_FREQUENCY)
    document["features"] = [_cwz_feature(feature) for feature in document["features"]]
    return orjson.dumps(document)


# --------------------------------------------------------------------------- checking


def _feed_info_problems(info: Any) -> list[Problem]:
    if not isinstance(info, Mapping):
        return [Problem("$.feed_info", "required")]
    problems = []
    if "license" not in info:
        problems.append(Problem("$.feed_info.license", f"required in CWZ (the CC0 URL, {CC0_LICENSE})"))
    elif info["license"] != CC0_LICENSE:
        problems.append(Problem("$.feed_info.license", f"{info['license']!r}: CWZ allows only {CC0_LICENSE}"))
    if info.get("version") != CWZ_VERSION:  # the schema checks only the major.minor pattern
        problems.append(Problem("$.feed_info.version", f"{info.get('version')!r}: this checks CWZ {CWZ_VERSION}",
                                "warning"))
    problems.extend(_frequency_problems(info, "$.feed_info"))
    sources = info.get("data_sources")
    for position, source in enumerate(sources if isinstance(sources, list) else ()):
        where = f"$.feed_info.data_sources[{position}]"
        if not isinstance(source, Mapping):
            continue  # the schema says it
        problems.extend(_frequency_problems(source, where))
        if "update_date" not in source:
            problems.append(Problem(f"{where}.update_date", "required in CWZ"))
        problems.extend(Problem(f"{where}.{field}", "removed in CWZ 1.0", "warning")
                        for field in _REMOVED_SOURCE_FIELDS if field in source)
    return problems


def _frequency_problems(owner: Mapping[str, Any], where: str) -> list[Problem]:
    value = owner.get("update_frequency")
    if "update_frequency" not in owner:
        return [Problem(f"{where}.update_frequency", "required in CWZ (seconds; -1 at least)")]
    if not isinstance(value, int) or isinstance(value, bool) or value < -1:
        return [Problem(f"{where}.update_frequency", f"{value!r} is not an integer of at least -1")]
    return []


def _removed_value(value: Any, removed: frozenset[str], where: str) -> list[Problem]:
    return [Problem(where, f"{value!r} was removed in CWZ 1.0")] if value in removed else []


def _feature_problems(feature: Mapping[str, Any], where: str) -> list[Problem]:
    problems = []
    geometry = feature.get("geometry")
    if isinstance(geometry, Mapping) and geometry.get("type") == "MultiPoint":
        problems.append(Problem(f"{where}.geometry", "MultiPoint was removed in CWZ 1.0 (LineString or Point)"))
    properties = feature.get("properties")
    if not isinstance(properties, Mapping):
        return problems  # the schema says it
    core = properties.get("core_details")
    core = core if isinstance(core, Mapping) else {}
    kind = core.get("event_type")
    problems += _removed_value(kind, _REMOVED_EVENT_TYPES, f"{where}.properties.core_details.event_type")
    if "relationship" in core:
        problems.append(Problem(f"{where}.properties.core_details.relationship", "removed in CWZ 1.0", "warning"))
    for flag in _DETOUR_FLAGS if kind == "detour" else _VERIFIED_FLAGS:
        if not isinstance(properties.get(flag), bool):
            problems.append(Problem(f"{where}.properties.{flag}", "required in CWZ: true or false (the *_accuracy "
                                    "alternatives were removed)"))
    problems.extend(Problem(f"{where}.properties.{field}", "removed in CWZ 1.0", "warning")
                    for field in _REMOVED_PROPERTIES if field in properties)
    lanes = properties.get("lanes")
    for position, lane in enumerate(lanes if isinstance(lanes, list) else ()):
        if isinstance(lane, Mapping):
            problems += _removed_value(lane.get("type"), _REMOVED_LANE_TYPES,
                                       f"{where}.properties.lanes[{position}].type")
            if "lane_number" in lane:
                problems.append(Problem(f"{where}.properties.lanes[{position}].lane_number", "removed in CWZ 1.0",
                                        "warning"))
    works = properties.get("types_of_work")
    for position, work in enumerate(works if isinstance(works, list) else ()):
        if isinstance(work, Mapping):
            problems += _removed_value(work.get("type_name"), _REMOVED_WORK_TYPES,
                                       f"{where}.properties.types_of_work[{position}].type_name")
    presence = properties.get("worker_presence")
    if isinstance(presence, Mapping):
        problems += _removed_value(presence.get("method"), _REMOVED_PRESENCE_METHODS,
                                   f"{where}.properties.worker_presence.method")
        definitions = presence.get("definition")
        for position, definition in enumerate(definitions if isinstance(definitions, list) else ()):
            problems += _removed_value(definition, _REMOVED_PRESENCE_DEFINITIONS,
                                       f"{where}.properties.worker_presence.definition[{position}]")
    return problems


def _as_wzdx(document: Mapping[str, Any]) -> dict[str, Any]:
    """The CWZ document as WZDx 4.2 would spell it, for the 4.2 schemas: version 4.2, a Point as a
    two-point MultiPoint, and what CWZ added (values, a -1 frequency) left out; the CWZ rules check those."""
    view = copy.deepcopy(dict(document))
    info = view.get("feed_info")
    if isinstance(info, dict):
        info["version"] = WZDX_VERSION
        for owner in (info, *(s for s in info.get("data_sources") or () if isinstance(s, dict))):
            if isinstance(owner.get("update_frequency"), int) and owner["update_frequency"] < 1:
                del owner["update_frequency"]
    for feature in view.get("features") or ():
        if not isinstance(feature, dict):
            continue
        geometry = feature.get("geometry")
        if isinstance(geometry, dict) and geometry.get("type") == "Point":
            feature["geometry"] = {"type": "MultiPoint", "coordinates": [geometry.get("coordinates")] * 2}
        properties = feature.get("properties")
        if not isinstance(properties, dict):
            continue
        works = properties.get("types_of_work")
        if isinstance(works, list):
            properties["types_of_work"] = [
                work for work in works if not (isinstance(work, Mapping) and work.get("type_name") in _ADDED_WORK_TYPES)
            ]
        presence = properties.get("worker_presence")
        if isinstance(presence, dict):
            if presence.get("method") in _ADDED_PRESENCE_METHODS:
                del presence["method"]
            if isinstance(presence.get("definition"), list):
                presence["definition"] = [d for d in presence["definition"] if d not in _ADDED_PRESENCE_DEFINITIONS]
    return view


def check_cwz(document: bytes, *, wzdx_check: Callable[[bytes], list[Problem]] | None = None) -> list[Problem]:
    """What is wrong with a CWZ 1.0 work zone feed; empty when nothing is.

    The CWZ differences from WZDx 4.2 are checked here (errors: what CWZ requires or removed from an
    enumeration; warnings: WZDx members CWZ removed, which its schema does not refuse). ``wzdx_check``
    (``exchange.validation.validate_wzdx``: the shipped WZDx 4.2 schemas and business rules) is run on
    the document as WZDx 4.2 would spell it; without it only the CWZ rules run.
    """
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        return [Problem("$", f"malformed JSON: {exc}")]
    if not isinstance(parsed, dict):
        return [Problem("$", f"a CWZ feed is a JSON object, not a {type(parsed).__name__}")]
    problems = []
    if "road_event_feed_info" in parsed:
        problems.append(Problem("$.road_event_feed_info", "removed in CWZ 1.0: the feed has feed_info"))
    problems += _feed_info_problems(parsed.get("feed_info"))
    features = parsed.get("features")
    for position, feature in enumerate(features if isinstance(features, list) else ()):
        if isinstance(feature, Mapping):
            problems += _feature_problems(feature, f"$.features[{position}]")
    if wzdx_check is not None:
        problems += wzdx_check(orjson.dumps(_as_wzdx(parsed)))
    return problems


# --------------------------------------------------------------------------- what CWZ carries


def problems_for(event: Event, zone: tzinfo | None = None) -> list[str]:
    """Why CWZ cannot carry ``event`` (held back from CWZ only): what no work zone feed can carry."""
    return work_zone_problems(event, "CWZ", zone)


def losses_for(event: Event, *, horizon: timedelta = DEFAULT_HORIZON) -> list[str]:
    """What CWZ loses or approximates of ``event`` when it carries it: what every work zone feed built
    from WZDx's loses, and what CWZ removed."""
    losses = work_zone_losses(event, "CWZ", horizon=horizon)
    if not losses:
        return losses
    kept = event.attributes.get(WZDX_KEY)
    kept = kept if isinstance(kept, Mapping) else {}
    if any(isinstance(kept.get(field), int | float) for field in _MILEPOSTS):
        losses.append(f"mileposts carried as reference posts in {_MILEPOST_UNIT} (CWZ replaced mileposts)")
    works = kept.get("types_of_work")
    if isinstance(works, list) and any(isinstance(w, Mapping) and w.get("type_name") in _REMOVED_WORK_TYPES
                                       for w in works):
        losses.append("work type 'maintenance' is not carried (removed in CWZ 1.0)")
    details = event.details
    lanes = [lane.type.lower().replace("_", "-") for lane in details.lanes or ()] if details is not None else []
    if event.category is not Category.ROAD_CLOSED and _REMOVED_LANE_TYPES.intersection(lanes):
        losses.append("lane type 'center-left-turn-lane' published as 'general' (removed in CWZ 1.0)")
    return losses
