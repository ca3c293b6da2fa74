"""Validate published feeds offline: CIFS against Google's cifsv2.xsd, WZDx against the 4.2 JSON Schemas.

The schemas ship inside the package (``exchange/schemas/``, see the ``SOURCE.md``/``LICENSE.md``
notes there) and are loaded with :mod:`importlib.resources`, so validation never touches the
network. Schema checks are followed by the rules no schema expresses:
:func:`feeds.cifs.check_cifs_rules` for CIFS, and for WZDx the business rules of
``Creating_a_WZDx_Feed.md`` that can be checked mechanically (every ``data_source_id`` names a
feed data source, all times UTC, unique ids, lanes numbered 1..n from the left, end after start).

The compiled XSD and the JSON Schema validator are built once, on first use. lxml's schema object
is not safe to share between threads, so XSD validation holds a lock.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from lxml import etree
from referencing import Registry, Resource

from exchange.errors import MalformedPayload
from feeds.cifs import check_cifs_rules
from feeds.problems import Problem
from feeds.wzdx import WZDX_VERSION, feed_version
from feeds.xmlsafe import looks_like_xml, parse_untrusted

__all__ = [
    "OfficialSchemas",
    "check_cwz_document",
    "check_datex2_document",
    "checks_run",
    "cifs_schema",
    "json_path",
    "load_cwz_validator",
    "load_xsd",
    "validate_cifs_json",
    "validate_cifs_xml",
    "validate_feed",
    "validate_wzdx",
    "wzdx_validator",
]


@dataclass(frozen=True, slots=True)
class OfficialSchemas:
    """The official schemas found under ``publish.schema_dir`` (None: not given, or not there)."""

    datex2: Any = None  # lxml.etree.XMLSchema of DATEXII_3_D2Payload.xsd or DATEXII_3_MessageContainer.xsd
    datex2_from: Path | None = None
    cwz: Any = None  # jsonschema validator of the CWZ 1.0 WorkZoneFeed.json
    cwz_from: Path | None = None
    looked_in: Path | None = None  # publish.schema_dir, when given (a missing schema there is said, not ignored)


_XSD_LOCK = threading.Lock()
_TIME_FIELDS = ("start_date", "end_date")
_DISCRIMINATORS = frozenset({"type", "event_type"})
_CORE_TIME_FIELDS = ("creation_date", "update_date")


def _schemas() -> Any:
    return resources.files("exchange") / "schemas"


@cache
def cifs_schema() -> etree.XMLSchema:
    """Google's cifsv2.xsd (2023-11-07), compiled once."""
    data = (_schemas() / "cifsv2.xsd").read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.fromstring(data, parser=parser))


@cache
def _wzdx_schemas() -> tuple[Registry[Any], dict[str, Any]]:
    """The registry of every packaged WZDx 4.2 and GeoJSON schema (by ``$id``), and the feed root schema."""
    found: list[tuple[str, Resource[Any]]] = []
    root: dict[str, Any] | None = None
    for folder in (_schemas() / "wzdx" / WZDX_VERSION, _schemas() / "geojson"):
        for entry in folder.iterdir():
            if not entry.name.endswith(".json"):
                continue
            contents = orjson.loads(entry.read_bytes())
            found.append((contents["$id"], Resource.from_contents(contents)))
            if entry.name == "WorkZoneFeed.json" and folder.name == WZDX_VERSION:
                root = contents
    if root is None:
        raise RuntimeError("the packaged WZDx 4.2 WorkZoneFeed.json schema is missing")
    return Registry().with_resources(found), root


@cache
def wzdx_validator() -> Draft7Validator:
    """A draft-07 validator of WZDx 4.2 ``WorkZoneFeed.json``, every ``$ref`` resolved from the local copies."""
    registry, root = _wzdx_schemas()
    return Draft7Validator(root, registry=registry)


@cache
def wzdx_device_validator() -> Draft7Validator:
    """A draft-07 validator of WZDx 4.2 ``DeviceFeed.json`` (field devices: arrow boards, cameras, ...)."""
    registry, _root = _wzdx_schemas()
    device_feed = orjson.loads((_schemas() / "wzdx" / WZDX_VERSION / "DeviceFeed.json").read_bytes())
    return Draft7Validator(device_feed, registry=registry)


def _is_device_feed(document: Any) -> bool:
    """A WZDx device feed: every feature is a field device (its core details name a ``device_type``)."""
    features = document.get("features") if isinstance(document, dict) else None
    return bool(features) and isinstance(features, list) and all(
        isinstance(feature, dict) and isinstance(feature.get("properties"), dict)
        and isinstance(feature["properties"].get("core_details"), dict)
        and "device_type" in feature["properties"]["core_details"]
        for feature in features
    )


def _validate_wzdx_device_document(document: Any) -> list[Problem]:
    version = feed_version(document)
    if version != WZDX_VERSION:
        return [Problem("$.feed_info.version", f"WZDx version {version!r}: this validator checks WZDx {WZDX_VERSION} "
                                                "only")]
    found = [e for error in wzdx_device_validator().iter_errors(document) for e in _schema_errors(error)]
    return [Problem(json_path(path), message) for path, message in _unique(found)]


def _inline_refs(node: Any, document: Mapping[str, Any], documents: Mapping[str, Any], depth: int = 0) -> Any:
    """``node`` with every ``$ref`` replaced by its target (draft-07 ignores a ``$ref``'s siblings)."""
    if depth > 64:
        raise RuntimeError("the WZDx schemas nest deeper than expected (a recursive $ref?)")
    if isinstance(node, dict):
        if "$ref" in node:
            uri, _, fragment = str(node["$ref"]).partition("#")
            target_document = documents[uri] if uri else document
            target: Any = target_document
            for part in (part for part in fragment.split("/") if part):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return _inline_refs(target, target_document, documents, depth + 1)
        return {
            key: _inline_refs(value, document, documents, depth + 1)
            for key, value in node.items() if key not in ("$id", "$schema")
        }
    if isinstance(node, list):
        return [_inline_refs(value, document, documents, depth + 1) for value in node]
    return node


@cache
def _fast_validator() -> Any:
    """The whole feed schema, refs inlined, compiled by jsonschema-rs: a valid feed is confirmed in
    milliseconds; only an invalid one goes through jsonschema for its detailed messages."""
    import jsonschema_rs

    registry, root = _wzdx_schemas()
    documents = {uri: registry[uri].contents for uri in registry}
    inlined = _inline_refs(root, root, documents)
    return jsonschema_rs.validator_for({"$schema": "http://json-schema.org/draft-07/schema#", **inlined})


@cache
def _feature_validator() -> Draft7Validator:
    """The feed schema's ``features.items`` alone, to check one feature at a time.

    Its ``$ref``s are inlined once: the same checks, about 1.6 times faster than resolving them
    through the registry on every feature.
    """
    registry, root = _wzdx_schemas()
    documents = {uri: registry[uri].contents for uri in registry}
    items = _inline_refs(root["properties"]["features"]["items"], root, documents)
    return Draft7Validator({"$schema": "http://json-schema.org/draft-07/schema#", **items})


#: feature digest -> its schema errors (path inside the feature, message); a feed republished every
#: few minutes repeats most features, and jsonschema costs about 1 ms a feature
_FEATURE_ERRORS: dict[bytes, tuple[tuple[tuple[str | int, ...], str], ...]] = {}
_FEATURE_CACHE_LIMIT = 200_000


def _feature_errors(feature: Any) -> tuple[tuple[tuple[str | int, ...], str], ...]:
    try:
        key = hashlib.blake2b(orjson.dumps(feature, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
    except (TypeError, orjson.JSONEncodeError):
        key = None
    cached = _FEATURE_ERRORS.get(key) if key is not None else None
    if cached is None:
        cached = tuple(_unique(e for error in _feature_validator().iter_errors(feature) for e in _schema_errors(error)))
        if key is not None:
            if len(_FEATURE_ERRORS) >= _FEATURE_CACHE_LIMIT:
                _FEATURE_ERRORS.clear()
            _FEATURE_ERRORS[key] = cached
    return cached


def validate_cifs_xml(data: bytes) -> list[Problem]:
    """XSD errors (``"line N"``) and the CIFS rules beyond the XSD; empty when the feed is valid.

    A DOCTYPE or ENTITY declaration is refused, never expanded. Rules (polyline, time zones,
    type/subtype, ids, ...) are checked only on an ``<incidents>`` document.
    """
    try:
        root = parse_untrusted(data)
    except MalformedPayload as exc:
        return [Problem("document", exc.message)]
    schema = cifs_schema()
    with _XSD_LOCK:
        schema.validate(root)
        log: Iterable[Any] = schema.error_log  # type: ignore[assignment]  # iterable, the stubs omit it
        problems = [Problem(f"line {error.line}", error.message) for error in log]
    if etree.QName(root).localname == "incidents":
        problems.extend(check_cifs_rules(root))
    return problems


def validate_cifs_json(data: bytes) -> list[Problem]:
    """CIFS JSON has no official schema: the structural rules of the XSD and the rules beyond it."""
    return check_cifs_rules(data)


def json_path(parts: Iterable[str | int]) -> str:
    """A JSON path from path parts.

    >>> json_path(["features", 3, "properties", "core_details"])
    '$.features[3].properties.core_details'
    """
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def _discriminator_errors(errors: list[ValidationError]) -> list[ValidationError]:
    """The errors of a oneOf/anyOf branch refused on its discriminator (``type``, ``event_type``)."""
    return [
        error for error in errors
        if error.validator in ("const", "enum") and error.path and error.path[-1] in _DISCRIMINATORS
    ]


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[:297] + "..."


def _schema_errors(error: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """The leaf errors of one schema error, as (path, message).

    Inside a oneOf/anyOf (GeoJSON geometry types, work zone vs detour), the branch whose
    discriminator matches is followed (else the one with the fewest errors) and all its errors
    are reported; when every branch refuses the discriminator, the allowed values are named.
    """
    if not error.context:
        return [(tuple(error.absolute_path), _short(error.message))]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
    intended = [errors for errors in branches.values() if not _discriminator_errors(errors)]
    if not intended:
        refused = [sub for errors in branches.values() for sub in _discriminator_errors(errors)]
        allowed: list[Any] = []
        for sub in refused:
            for value in sub.validator_value if sub.validator == "enum" else [sub.validator_value]:
                if value not in allowed:
                    allowed.append(value)
        return [(tuple(refused[0].absolute_path), _short(f"{refused[0].instance!r} is not one of {allowed!r}"))]
    found: list[tuple[tuple[str | int, ...], str]] = []
    for sub in min(intended, key=len):
        found.extend(_schema_errors(sub))
    return found


def _unique(found: Iterable[tuple[tuple[str | int, ...], str]]) -> list[tuple[tuple[str | int, ...], str]]:
    """Once each: the WZDx schema checks ``core_details`` in several places."""
    return list(dict.fromkeys(found))


def _utc_problem(value: Any, where: str) -> Problem | None:
    if not isinstance(value, str):
        return None  # the schema reports a wrong type
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return Problem(where, f"{value!r} is not an RFC 3339 time")
    if when.utcoffset() != timedelta(0):
        return Problem(where, f"{value!r} is not UTC; WZDx times must be UTC (e.g. 2024-07-12T13:00:00Z)")
    return None


def _business_rules(document: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    info_key = "feed_info" if "feed_info" in document else "road_event_feed_info"
    info = document.get(info_key)
    source_ids: set[str] = set()
    if isinstance(info, Mapping):
        checked = _utc_problem(info.get("update_date"), f"$.{info_key}.update_date")
        if checked:
            problems.append(checked)
        for position, source in enumerate(info.get("data_sources") or []):
            if isinstance(source, Mapping):
                source_ids.add(str(source.get("data_source_id")))
                checked = _utc_problem(source.get("update_date"), f"$.{info_key}.data_sources[{position}].update_date")
                if checked:
                    problems.append(checked)
    features = document.get("features")
    seen: dict[str, int] = {}
    for position, feature in enumerate(features if isinstance(features, list) else []):
        if not isinstance(feature, Mapping):
            continue
        where = f"$.features[{position}]"
        ident = feature.get("id")
        if isinstance(ident, str):
            if ident in seen:
                problems.append(Problem(f"{where}.id", f"duplicate id {ident!r} (also $.features[{seen[ident]}])"))
            else:
                seen[ident] = position
        properties = feature.get("properties")
        if not isinstance(properties, Mapping):
            continue
        core = properties.get("core_details")
        if isinstance(core, Mapping):
            source_id = core.get("data_source_id")
            if isinstance(source_id, str) and source_id not in source_ids:
                problems.append(Problem(
                    f"{where}.properties.core_details.data_source_id",
                    f"{source_id!r} is not a data_source_id of {info_key}.data_sources",
                ))
            for field in _CORE_TIME_FIELDS:
                checked = _utc_problem(core.get(field), f"{where}.properties.core_details.{field}")
                if checked:
                    problems.append(checked)
        for field in _TIME_FIELDS:
            checked = _utc_problem(properties.get(field), f"{where}.properties.{field}")
            if checked:
                problems.append(checked)
        start, end = properties.get("start_date"), properties.get("end_date")
        if isinstance(start, str) and isinstance(end, str):
            try:
                if datetime.fromisoformat(end.replace("Z", "+00:00")) <= datetime.fromisoformat(
                    start.replace("Z", "+00:00")
                ):
                    problems.append(Problem(f"{where}.properties.end_date", f"{end} is not after start_date {start}"))
            except (TypeError, ValueError):
                pass  # reported above
        problems.extend(_lane_problems(properties.get("lanes"), f"{where}.properties.lanes"))
        problems.extend(_place_problems(feature.get("geometry"), f"{where}.geometry.coordinates"))
    return problems


def _place_problems(geometry: Any, where: str) -> list[Problem]:
    """The first position of a feature's geometry that is no place on Earth (the schema checks only
    that positions are numbers): ``[200, 95]``, or latitude and longitude swapped beyond 90."""
    if not isinstance(geometry, Mapping):
        return []
    coordinates = geometry.get("coordinates")
    positions = [(f"{where}", coordinates)] if geometry.get("type") == "Point" else [
        (f"{where}[{index}]", position) for index, position in enumerate(coordinates or [])
    ] if isinstance(coordinates, list) else []
    for path, position in positions:
        if (isinstance(position, list) and len(position) >= 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in position[:2])
                and not (-180.0 <= position[0] <= 180.0 and -90.0 <= position[1] <= 90.0)):
            return [Problem(path, f"{position[:2]} is no place on Earth: [longitude -180..180, latitude -90..90]")]
    return []


def _lane_problems(lanes: Any, where: str) -> list[Problem]:
    if not isinstance(lanes, list) or not lanes:
        return []
    orders = [lane.get("order") for lane in lanes if isinstance(lane, Mapping)]
    numbers = [order for order in orders if isinstance(order, int)]
    if len(numbers) != len(orders):
        return []  # the schema reports it
    if sorted(numbers) != list(range(1, len(numbers) + 1)):
        message = f"lane orders {numbers} are not 1..{len(numbers)}: list every lane, 1 being the left-most"
        return [Problem(where, message)]
    return []


def _validate_wzdx_document(document: Any) -> list[Problem]:
    if not isinstance(document, dict):
        return [Problem("$", f"a WZDx feed is a JSON object, not a {type(document).__name__}")]
    version = feed_version(document)
    if version != WZDX_VERSION:
        message = f"WZDx version {version!r}: this validator checks WZDx {WZDX_VERSION} only"
        return [Problem("$.feed_info.version", message)]
    if _fast_validator().is_valid(document):
        return _business_rules(document)
    features = document.get("features")
    if isinstance(features, list):  # the envelope alone, then each feature (cached by content)
        envelope = {**document, "features": []}
        found = [e for error in wzdx_validator().iter_errors(envelope) for e in _schema_errors(error)]
        for position, feature in enumerate(features):
            found.extend((("features", position, *path), message) for path, message in _feature_errors(feature))
    else:
        found = [e for error in wzdx_validator().iter_errors(document) for e in _schema_errors(error)]
    problems = [Problem(json_path(path), message) for path, message in _unique(found)]
    return problems + _business_rules(document)


def validate_wzdx(data: bytes) -> list[Problem]:
    """WZDx 4.2 schema errors (JSON-path locations) and business rules; empty when the feed is valid."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return [Problem("$", f"malformed JSON: {exc}")]
    return _validate_wzdx_document(document)


def _is_wzdx(document: Any) -> bool:
    return isinstance(document, dict) and (
        "feed_info" in document or "road_event_feed_info" in document or document.get("type") == "FeatureCollection"
    )


#: feed_info.version of a Connected Work Zones 1.0 feed (WZDx, its predecessor, is 4.x)
CWZ_VERSION = "1.0"
_DATEX2_NAMESPACE = b"http://datex2.eu/schema/"


def validate_feed(data: bytes, schemas: OfficialSchemas | None = None) -> tuple[str, list[Problem]]:
    """Detect what a feed is and validate it.

    ``schemas``: the official schemas of ``publish.schema_dir`` (DATEX II XSD, CWZ JSON schemas),
    checked as well when given.

    Returns
    -------
    (kind, problems)
        ``kind`` is ``"cifs-xml"``, ``"cifs-json"``, ``"wzdx"``, ``"wzdx-device"``, ``"datex2"``, ``"cwz"`` or
        ``"unknown"``
        (with one problem).
    """
    head = data.lstrip()[:1]
    if looks_like_xml(data):
        if _DATEX2_NAMESPACE in data[:8192]:  # the root's namespaces are declared up front
            return "datex2", check_datex2_document(data, schemas)
        root = _ROOT_ELEMENT.search(data[:8192])
        if root is not None and root.group(1).split(b":")[-1] != b"incidents":
            name = root.group(1).decode("utf-8", "replace")
            return "unknown", [Problem("document", f"XML whose root is <{name}>: not a CIFS feed (<incidents>) nor "
                                                   "a DATEX II document")]
        return "cifs-xml", validate_cifs_xml(data)
    if head not in (b"{", b"["):
        return "unknown", [Problem("document", "neither XML nor JSON: not a CIFS, WZDx, CWZ or DATEX II feed")]
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return "unknown", [Problem("$", f"malformed JSON: {exc}")]
    if _is_wzdx(document):
        if feed_version(document) == CWZ_VERSION:
            return "cwz", check_cwz_document(data, schemas)
        if _is_device_feed(document):
            return "wzdx-device", _validate_wzdx_device_document(document)
        return "wzdx", _validate_wzdx_document(document)
    if isinstance(document, list) or (isinstance(document, dict) and ({"incidents", "incident"} & document.keys())):
        return "cifs-json", check_cifs_rules(data)
    return "unknown", [Problem("$", "JSON that is neither CIFS ('incidents') nor WZDx/CWZ ('feed_info', 'features')")]


#: the first element's name, past the XML declaration, comments and a DOCTYPE
_ROOT_ELEMENT = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def checks_run(kind: str, schemas: OfficialSchemas | None = None) -> list[str]:
    """What :func:`validate_feed` checked a document of this kind against, one phrase each."""
    if kind == "cifs-xml":
        return ["official cifsv2.xsd (2023-11-07)", "CIFS rules the XSD does not check"]
    if kind == "cifs-json":
        return ["CIFS rules (no official JSON schema exists)"]
    if kind == "wzdx":
        return ["official WZDx 4.2 schemas", "WZDx business rules"]
    if kind == "wzdx-device":
        return ["official WZDx 4.2 DeviceFeed schema (a field device feed: read by no source, checked only)"]
    looked_in = schemas.looked_in if schemas is not None else None
    if kind == "datex2":
        if schemas is not None and schemas.datex2 is not None:
            return ["own structural rules", f"official XSD from {schemas.datex2_from}"]
        if looked_in is not None:
            return [f"own structural rules only: no DATEXII_3_MessageContainer.xsd or DATEXII_3_D2Payload.xsd "
                    f"in {looked_in / 'datex2'}"]
        return ["own structural rules only (not the full DATEX II schema: set publish.schema_dir for it)"]
    if kind == "cwz":
        if schemas is not None and schemas.cwz is not None:
            return ["WZDx 4.2 schemas + CWZ differences", f"official CWZ schemas from {schemas.cwz_from}"]
        if looked_in is not None:
            return [f"WZDx 4.2 schemas + CWZ differences only: no WorkZoneFeed.json in {looked_in / 'cwz'}"]
        return ["WZDx 4.2 schemas + CWZ differences"]
    return []


def check_datex2_document(data: bytes, schemas: OfficialSchemas | None = None) -> list[Problem]:
    """DATEX II v3: the project's own structural rules (:func:`feeds.datex2.check_datex2`), and the official
    XSD when ``publish.schema_dir`` holds one."""
    from feeds.datex2 import check_datex2

    with _XSD_LOCK:  # lxml's schema object is not safe to share between threads
        return check_datex2(data, schemas.datex2 if schemas is not None else None)


def check_cwz_document(data: bytes, schemas: OfficialSchemas | None = None) -> list[Problem]:
    """CWZ 1.0: the shipped WZDx 4.2 schemas plus the CWZ differences (:func:`feeds.cwz.check_cwz`), and the
    official CWZ schemas when ``publish.schema_dir`` holds them."""
    from feeds.cwz import check_cwz

    problems = check_cwz(data, wzdx_check=validate_wzdx)
    if schemas is not None and schemas.cwz is not None:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            return problems  # the own rules said so
        found = [e for error in schemas.cwz.iter_errors(document) for e in _schema_errors(error)]
        problems += [Problem(json_path(path), f"official CWZ schema: {message}") for path, message in _unique(found)]
    return problems


def load_xsd(path: Path) -> etree.XMLSchema:
    """An official XSD and the files it includes, from disk (never the network); ConfigError when it cannot be."""
    from exchange.errors import ConfigError

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser=parser))
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigError(f"publish.schema_dir: {path} cannot be loaded as an XSD: {exc}") from None


def load_cwz_validator(root: Path) -> Draft7Validator:
    """The CWZ 1.0 feed schema at ``root``, its ``$ref``s resolved from the JSON schemas beside it and the
    packaged GeoJSON schemas (never the network); ConfigError when they cannot be read."""
    from exchange.errors import ConfigError

    found: list[tuple[str, Resource[Any]]] = []
    try:
        documents = [orjson.loads(path.read_bytes()) for path in sorted(root.parent.glob("*.json"))]
        documents += [orjson.loads(entry.read_bytes()) for entry in (_schemas() / "geojson").iterdir()
                      if entry.name.endswith(".json")]
        root_schema = orjson.loads(root.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"publish.schema_dir: the CWZ schemas in {root.parent} cannot be read: {exc}") from None
    found = [(document["$id"], Resource.from_contents(document)) for document in documents
             if isinstance(document, dict) and isinstance(document.get("$id"), str)]
    return Draft7Validator(root_schema, registry=Registry().with_resources(found), format_checker=FormatChecker())
