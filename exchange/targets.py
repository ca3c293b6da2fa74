"""The publishing targets: who receives an event, in which feeds, and what each cannot carry.

One event goes out to every target the city publishes (``publish.targets``):

========  ==========================  ==========================================================
target    feeds                       where the event's id (``Event.id``, shared by all targets)
========  ==========================  ==========================================================
cifs      cifs.xml, cifs.json         ``<incident id="...">`` / ``incident.id``
wzdx      wzdx.geojson                the feature's ``id`` (``<id>/reverse`` for a two-way
                                      closure's other direction)
datex2    datex2.xml                  ``sit:situation/@id`` and its records' ``@id``
cwz       cwz.geojson                 the feature's ``id``, as in WZDx
========  ==========================  ==========================================================

Each target is a :class:`Target`: its feeds, its pure renderer and document check, and its two
pure statements about one event, ``problems_for`` (why the target cannot carry it validly: it is
then held back from that target only) and ``losses_for`` (what is lost or approximated when it is
carried: the compile report). A target is on when configured and, for CWZ, when the licence
allows it (:func:`off_targets` says why one is off).

Official schemas the city obtained (``publish.schema_dir``) are read here, once
(:func:`official_schemas`), and handed to the pure checkers in ``feeds/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.config import Config
from exchange.model import Event, SourceRef
from exchange.validation import OfficialSchemas

if TYPE_CHECKING:
    from feeds.cifs import Attribution

__all__ = [
    "CIFS",
    "CWZ",
    "DATEX2",
    "TARGETS",
    "WZDX",
    "OfficialSchemas",
    "Target",
    "attribution",
    "enabled_targets",
    "feed_info",
    "off_feeds",
    "off_targets",
    "official_schemas",
]

log = logging.getLogger("exchange.targets")

Renderer = Callable[[Sequence[Event], Config, datetime], dict[str, bytes]]
#: the document problems of rendered feeds that make them invalid, one ``"<feed>: <location>: <message>"`` each
Checker = Callable[[Mapping[str, bytes], "OfficialSchemas"], list[str]]
EventStatement = Callable[[Event], list[str]]
#: why a target cannot carry an event, with the city's zone (a weekly schedule's hours are the city's)
ProblemStatement = Callable[[Event, tzinfo], list[str]]
#: why a feed generated at that time leaves out an event it carries (None: it is in it)
AbsenceStatement = Callable[[Event, datetime, tzinfo], str | None]


@dataclass(frozen=True, slots=True)
class Target:
    """One publishing target. Every callable is pure (the renderers and checkers of ``feeds/``)."""

    name: str
    feeds: Mapping[str, str]  # feed name -> media type
    render: Renderer
    check: Checker
    problems_for: ProblemStatement
    losses_for: EventStatement
    #: publish.hold_back_failing applies (the Waze acceptance lint is about what Waze accepts)
    waze_lint: bool = False
    absent_for: AbsenceStatement | None = None


def _cifs_problems(event: Event, zone: tzinfo) -> list[str]:
    """CIFS writes a weekly schedule as it is: one that never meets its dates goes out as its source has it."""
    from feeds.cifs import problems_for

    return problems_for(event)


def _cifs_losses(event: Event) -> list[str]:
    from feeds.cifs import losses_for

    return losses_for(event)


def _wzdx_problems(event: Event, zone: tzinfo) -> list[str]:
    from feeds.wzdx import problems_for

    return problems_for(event, zone)


def _wzdx_losses(event: Event) -> list[str]:
    from feeds.wzdx import losses_for

    return losses_for(event)


def _cwz_problems(event: Event, zone: tzinfo) -> list[str]:
    from feeds.cwz import problems_for

    return problems_for(event, zone)


def _cwz_losses(event: Event) -> list[str]:
    from feeds.cwz import losses_for

    return losses_for(event)


# --------------------------------------------------------------------------- cifs


def attribution(config: Config) -> Attribution:
    """Who the CIFS ``<source>`` (and the WZDx/CWZ data source) names for events that carry none: the
    city for its operators' closures, each city source (its ``publisher``, else its name) for its imports."""
    from adapters import build_source
    from feeds.cifs import Attribution

    settings = config.publish
    own = SourceRef(reference=settings.reference, name=settings.publisher, url=settings.source_url)
    by_namespace: dict[str, SourceRef] = {}
    for source in config.sources:
        if source.kind == "waze-feed":  # crowd data is never republished
            continue
        try:
            built = build_source(source, zone=config.zone)
        except Exception:  # a source that does not build is reported by sync and config check, not here
            continue
        publisher = getattr(built.settings, "publisher", None)
        by_namespace.setdefault(built.namespace, SourceRef(reference=source.name, name=publisher or source.name))
    return Attribution(own=own, by_namespace=by_namespace)


def _render_cifs(chosen: Sequence[Event], config: Config, generated: datetime) -> dict[str, bytes]:
    from feeds.cifs import render_cifs_json, render_cifs_xml

    named = attribution(config)
    return {
        "cifs.xml": render_cifs_xml(chosen, zone=config.zone, generated=generated, attribution=named),
        "cifs.json": render_cifs_json(chosen, zone=config.zone, generated=generated,
                                      shape=config.publish.cifs_json_shape, attribution=named),
    }


def _check_cifs(feeds: Mapping[str, bytes], _schemas: OfficialSchemas) -> list[str]:
    from exchange.validation import validate_cifs_xml

    return [f"cifs.xml: {p.location}: {p.message}" for p in validate_cifs_xml(feeds["cifs.xml"])
            if p.severity == "error"]


CIFS = Target("cifs", {"cifs.xml": "application/xml; charset=utf-8", "cifs.json": "application/json"},
              _render_cifs, _check_cifs, _cifs_problems, _cifs_losses, waze_lint=True)


# --------------------------------------------------------------------------- wzdx


def feed_info(config: Config) -> dict[str, Any]:
    """WZDx/CWZ ``feed_info`` from ``publish``: the fields that are set."""
    settings = config.publish
    found: dict[str, Any] = {
        "publisher": settings.publisher,
        "data_source_id": settings.data_source_id,
        "organization_name": settings.publisher,
        "contact_name": settings.contact_name,
        "contact_email": settings.contact_email,
        "license": settings.license,
        "update_frequency": settings.update_frequency_s,
        "url": settings.source_url,
    }
    return {key: value for key, value in found.items() if value is not None}


def _render_wzdx(chosen: Sequence[Event], config: Config, generated: datetime) -> dict[str, bytes]:
    from feeds.wzdx import render_wzdx

    # the city's zone: a schedule's hours are local times, published as one road event per occurrence
    return {"wzdx.geojson": render_wzdx(chosen, feed_info=feed_info(config), generated=generated, zone=config.zone,
                                        attribution=attribution(config))}


def _check_wzdx(feeds: Mapping[str, bytes], _schemas: OfficialSchemas) -> list[str]:
    from exchange.validation import validate_wzdx

    return [f"wzdx.geojson: {p.location}: {p.message}" for p in validate_wzdx(feeds["wzdx.geojson"])
            if p.severity == "error"]


def _work_zone_absence(event: Event, generated: datetime, zone: tzinfo) -> str | None:
    from feeds.wzdx import absent_now

    return absent_now(event, generated, zone)


WZDX = Target("wzdx", {"wzdx.geojson": "application/geo+json"}, _render_wzdx, _check_wzdx, _wzdx_problems,
              _wzdx_losses, absent_for=_work_zone_absence)


# --------------------------------------------------------------------------- datex2


def _render_datex2(chosen: Sequence[Event], config: Config, generated: datetime) -> dict[str, bytes]:
    from feeds.datex2 import render_datex2

    return {"datex2.xml": render_datex2(chosen, settings=config.publish.datex2, zone=config.zone,
                                        generated=generated, attribution=attribution(config))}


def _check_datex2(feeds: Mapping[str, bytes], schemas: OfficialSchemas) -> list[str]:
    from exchange.validation import check_datex2_document

    return [f"datex2.xml: {p.location}: {p.message}" for p in check_datex2_document(feeds["datex2.xml"], schemas)
            if p.severity == "error"]


def _datex2_problems(event: Event, zone: tzinfo) -> list[str]:
    from feeds.datex2 import problems_for

    return problems_for(event)


def _datex2_losses(event: Event) -> list[str]:
    from feeds.datex2 import losses_for

    return losses_for(event)


DATEX2 = Target("datex2", {"datex2.xml": "application/xml; charset=utf-8"}, _render_datex2, _check_datex2,
                _datex2_problems, _datex2_losses)


# --------------------------------------------------------------------------- cwz


def _render_cwz(chosen: Sequence[Event], config: Config, generated: datetime) -> dict[str, bytes]:
    from feeds.cwz import render_cwz

    return {"cwz.geojson": render_cwz(chosen, feed_info=feed_info(config), generated=generated, zone=config.zone,
                                      attribution=attribution(config))}


def _check_cwz(feeds: Mapping[str, bytes], schemas: OfficialSchemas) -> list[str]:
    from exchange.validation import check_cwz_document

    return [f"cwz.geojson: {p.location}: {p.message}" for p in check_cwz_document(feeds["cwz.geojson"], schemas)
            if p.severity == "error"]


CWZ = Target("cwz", {"cwz.geojson": "application/geo+json"}, _render_cwz, _check_cwz, _cwz_problems, _cwz_losses,
             absent_for=_work_zone_absence)

#: every target ``publish.targets`` may name, in the order they are published and reported
TARGETS: Mapping[str, Target] = {target.name: target for target in (CIFS, WZDX, DATEX2, CWZ)}


# --------------------------------------------------------------------------- which targets are on


def off_targets(config: Config) -> dict[str, str]:
    """Target name -> why it is off, for every known target that is not published."""
    off: dict[str, str] = {}
    for name in TARGETS:
        if name not in config.publish.targets:
            off[name] = "not in publish.targets"
        elif name == "cwz":
            reason = _cwz_off_reason(config.publish.license, config.network is not None)
            if reason is not None:
                off[name] = reason
    return off


def _cwz_off_reason(license_url: str | None, on_openstreetmap: bool) -> str | None:
    """Why CWZ cannot be published under this licence (CWZ 1.0 allows only CC0), or None."""
    from feeds.cwz import cwz_enabled

    enabled, reason = cwz_enabled(license_url, on_openstreetmap=on_openstreetmap)
    return None if enabled else reason.removeprefix("CWZ feed off: ")


def enabled_targets(config: Config) -> list[Target]:
    """The targets published, in :data:`TARGETS` order."""
    off = off_targets(config)
    return [target for name, target in TARGETS.items() if name not in off]


def off_feeds(config: Config) -> dict[str, str]:
    """Feed name -> why it is not published (its target is off): the server answers 404 with it."""
    return {feed: f"{name}: off: {reason}" for name, reason in off_targets(config).items()
            for feed in TARGETS[name].feeds}


# --------------------------------------------------------------------------- official schemas (I/O)


def official_schemas(schema_dir: Path | None) -> OfficialSchemas:
    """The official schemas under ``schema_dir``, read once per directory (None: none given)."""
    return _official_schemas(schema_dir.expanduser().resolve()) if schema_dir is not None else OfficialSchemas()


#: the DATEX II 3.x roots looked for in ``<schema_dir>/datex2``, in order: the message container imports the
#: payload schema, so it checks both a ``d2:payload`` (ours) and a ``messageContainer`` (NPRA's, Fintraffic's)
DATEX2_ROOTS = ("DATEXII_3_MessageContainer.xsd", "DATEXII_3_D2Payload.xsd")
#: the CWZ 1.0 feed schema looked for in ``<schema_dir>/cwz`` (with the schemas it refers to beside it)
CWZ_ROOT = "WorkZoneFeed.json"


@cache
def _official_schemas(schema_dir: Path) -> OfficialSchemas:
    from exchange.validation import load_cwz_validator, load_xsd

    datex2_root = next((schema_dir / "datex2" / name for name in DATEX2_ROOTS
                        if (schema_dir / "datex2" / name).is_file()), None)
    cwz_root = schema_dir / "cwz" / CWZ_ROOT
    if datex2_root is None:  # said once per process, not ignored: the city believes it is checked
        log.warning("publish.schema_dir: no %s in %s; DATEX II is checked with the project's own rules only",
                    " or ".join(DATEX2_ROOTS), schema_dir / "datex2")
    if not cwz_root.is_file():
        log.warning("publish.schema_dir: no %s in %s; CWZ is checked with the WZDx 4.2 schemas and the CWZ "
                    "differences only", CWZ_ROOT, schema_dir / "cwz")
    return OfficialSchemas(
        datex2=load_xsd(datex2_root) if datex2_root is not None else None, datex2_from=datex2_root,
        cwz=load_cwz_validator(cwz_root) if cwz_root.is_file() else None,
        cwz_from=cwz_root if cwz_root.is_file() else None,
        looked_in=schema_dir,
    )
