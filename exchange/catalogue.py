"""The feed catalogue: what portals harvest and people read at ``/feeds``, and what ``exchange export``
writes beside its files. Pure: facts in (from the server or the export), documents out; no I/O.

One description (:class:`Catalogue` of :class:`Dataset` of :class:`Distribution`) has three
renderings:

- :func:`to_jsonld`: DCAT-AP 3 as JSON-LD with an inline ``@context`` (no remote context to fetch:
  CKAN's ckanext-dcat, uData and data.europa.eu parse it with a plain RDF parser). Coverage is a
  ``dct:Location`` with both ``dcat:bbox`` (WKT) and ``locn:geometry`` (GeoJSON), so harvesters of
  either DCAT-AP 2 or 3 find it. Controlled values use the EU vocabularies (file types, access
  rights, frequency, data theme) and IANA media types.
- :func:`to_json`: plain JSON for scripts.
- :func:`exchange.catalogue_html.to_html`: a page for people, with the JSON-LD embedded (search
  engines read it).

A restricted feed (partner tokens required) is described without what only partners should learn:
no size, event count or download count, no computed coverage (only ``catalogue.coverage_bbox``),
and no download URL; no word of how to authenticate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from exchange.config import CC0_URL, ODBL_URL, Config
from exchange.output import iso

__all__ = [
    "Agent",
    "Catalogue",
    "Dataset",
    "Distribution",
    "ExportFile",
    "FeedFacts",
    "Spatial",
    "coordinate",
    "export_catalogue",
    "feed_catalogue",
    "to_json",
    "to_jsonld",
]

BBox = tuple[float, float, float, float]

#: the JSON-LD context, inline: harvesters must not need to fetch anything to read the terms
CONTEXT: Mapping[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "locn": "http://www.w3.org/ns/locn#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "void": "http://rdfs.org/ns/void#",
    "schema": "http://schema.org/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
}
_EU = "http://publications.europa.eu/resource/authority"
_IANA = "http://www.iana.org/assignments/media-types"
#: EU file-type vocabulary codes of the media types we publish
_FILE_TYPES: Mapping[str, str] = {
    "application/xml": "XML", "application/json": "JSON", "application/geo+json": "GEOJSON", "text/csv": "CSV",
}
CIFS_SPEC = "https://developers.google.com/waze/data-feed/cifs-specification"
#: the $id of the WZDx 4.2 feed schema the feed is validated against (exchange/schemas/wzdx/4.2)
WZDX_SPEC = "https://raw.githubusercontent.com/usdot-jpo-ode/wzdx/main/schemas/4.2/WorkZoneFeed.json"
DATEX2_SPEC = "https://docs.datex2.eu"
#: the $id of the CWZ 1.0 feed schema (not shipped: GPL-3.0; publish.schema_dir may hold a copy)
CWZ_SPEC = "https://raw.githubusercontent.com/ite-org/cwz/main/schemas/1.0/WorkZoneFeed.json"

#: default titles and descriptions of the feeds (``catalogue.feeds`` overrides them)
_FEED_TEXT: Mapping[str, tuple[str, str]] = {
    "cifs.xml": (
        "Road closures (Waze CIFS, XML)",
        "The city's road closures and roadworks in Waze's Closure and Incident Feed Specification (CIFS), XML. "
        "Ended closures stay in the feed for a while with their end time.",
    ),
    "cifs.json": (
        "Road closures (Waze CIFS, JSON)",
        "The city's road closures and roadworks in Waze's Closure and Incident Feed Specification (CIFS), JSON. "
        "Ended closures stay in the feed for a while with their end time.",
    ),
    "wzdx.geojson": (
        "Work zones and road closures (WZDx 4.2)",
        "The city's road closures and roadworks as a Work Zone Data Exchange (WZDx) 4.2 feed: a GeoJSON "
        "FeatureCollection of road events.",
    ),
    "datex2.xml": (
        "Road closures, roadworks and accidents (DATEX II v3)",
        "The city's road closures, roadworks and accidents as a DATEX II 3.5 SituationPublication (XML), the "
        "format of the European national access points. City data only, never crowd reports.",
    ),
    "cwz.geojson": (
        "Work zones and road closures (Connected Work Zones 1.0)",
        "The city's road closures and roadworks as a Connected Work Zones (CWZ) 1.0 feed, WZDx's successor: a "
        "GeoJSON FeatureCollection of road events, released under CC0.",
    ),
}
_FEED_SPECS: Mapping[str, str] = {"cifs.xml": CIFS_SPEC, "cifs.json": CIFS_SPEC, "wzdx.geojson": WZDX_SPEC,
                                  "datex2.xml": DATEX2_SPEC, "cwz.geojson": CWZ_SPEC}


@dataclass(frozen=True, slots=True)
class Agent:
    """The publisher (``foaf:Agent``)."""

    name: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Spatial:
    """Geographic coverage: a lon/lat box, WGS84 (a zero width or height is widened a little: a box
    with no area is no polygon).

    >>> Spatial((-122.3, 37.8, -122.3, 37.8)).wkt
    'POLYGON((-122.3005 37.7995,-122.2995 37.7995,-122.2995 37.8005,-122.3005 37.8005,-122.3005 37.7995))'
    """

    bbox: BBox

    @property
    def corners(self) -> list[list[float]]:
        min_lon, min_lat, max_lon, max_lat = self.bbox
        if max_lon - min_lon < 1e-6:
            min_lon, max_lon = min_lon - _PAD, max_lon + _PAD
        if max_lat - min_lat < 1e-6:
            min_lat, max_lat = min_lat - _PAD, max_lat + _PAD
        ring = [(min_lon, min_lat), (max_lon, min_lat), (max_lon, max_lat), (min_lon, max_lat), (min_lon, min_lat)]
        return [[round(lon, 6), round(lat, 6)] for lon, lat in ring]

    @property
    def wkt(self) -> str:
        return "POLYGON((" + ",".join(f"{coordinate(lon)} {coordinate(lat)}" for lon, lat in self.corners) + "))"

    @property
    def geometry(self) -> dict[str, Any]:
        return {"type": "Polygon", "coordinates": [self.corners]}


def coordinate(value: float) -> str:
    """A coordinate to 6 decimals (about 0.1 m), without trailing zeros."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


#: half the side of the box drawn around a single point, degrees (about 55 m)
_PAD = 0.0005


@dataclass(frozen=True, slots=True)
class Distribution:
    """One way to get a dataset: a URL, its media type and, when known, its size."""

    uri: str
    title: str
    url: str
    media_type: str
    byte_size: int | None = None
    downloadable: bool = True  # the URL is the bytes themselves (dcat:downloadURL), not a door to them

    @property
    def file_type(self) -> str | None:
        return _FILE_TYPES.get(self.media_type)


@dataclass(frozen=True, slots=True)
class Dataset:
    """One feed (or one export): what it is, whose, under which licence, when, where."""

    identifier: str
    uri: str
    title: str
    description: str
    #: None when the publisher cannot license it (crowd data republished with Waze's consent): ``rights`` says why
    license: str | None
    distributions: tuple[Distribution, ...]
    rights: str | None = None
    issued_ms: int | None = None
    modified_ms: int | None = None
    spatial: Spatial | None = None
    restricted: bool = False
    events: int | None = None
    downloads: int | None = None
    conforms_to: str | None = None
    temporal: tuple[int | None, int | None] | None = None  # the period an export covers
    continuously_updated: bool = False


@dataclass(frozen=True, slots=True)
class Catalogue:
    """A ``dcat:Catalog`` and its datasets; ``uri`` is the catalogue's own address."""

    uri: str
    title: str
    description: str
    publisher: Agent
    license: str
    keywords: tuple[str, ...]
    contact_name: str | None
    contact_email: str | None
    landing_page: str
    datasets: tuple[Dataset, ...] = field(default=())
    links: Mapping[str, str] = field(default_factory=dict)  # rendering -> URL (html, json, jsonld)
    off: Mapping[str, str] = field(default_factory=dict)  # feed -> why it is not published (its target is off)
    unlisted: str | None = None  # why no feed is listed here (none published yet, or they need a token)


@dataclass(frozen=True, slots=True)
class FeedFacts:
    """What the server knows of one published feed."""

    name: str
    media_type: str
    published_ms: int
    first_published_ms: int
    byte_size: int
    events: int
    downloads: int


def catalogue_header(config: Config, *, uri: str, landing_page: str, links: Mapping[str, str] | None = None,
                     datasets: Sequence[Dataset] = ()) -> Catalogue:
    """The catalogue's own description from the config (``[catalogue]``, falling back on ``[publish]``)."""
    settings, publish = config.catalogue, config.publish
    publisher = settings.publisher_name or publish.publisher
    return Catalogue(
        uri=uri,
        title=settings.title or f"{publisher} traffic feeds",
        description=settings.description,
        publisher=Agent(publisher, settings.publisher_url or publish.source_url),
        license=catalogue_license(config),
        keywords=tuple(settings.keywords),
        contact_name=settings.contact_name or publish.contact_name,
        contact_email=settings.contact_email or publish.contact_email,
        landing_page=settings.landing_page or landing_page,
        datasets=tuple(datasets),
        links=dict(links or {}),
    )


def feed_catalogue(
    config: Config, feeds: Sequence[FeedFacts], *, base_url: str, restricted: bool,
    events_bbox: BBox | None, off: Mapping[str, str] | None = None,
) -> Catalogue:
    """The catalogue at ``{base_url}/feeds``: one dataset per published feed, and why the feeds of targets
    that are off (``off``: feed -> reason) are not published.

    ``restricted``: the feeds need a partner token; they are then listed only with
    ``catalogue.list_restricted``, and without what only partners should learn. ``events_bbox``
    is the extent of the published events (``catalogue.coverage_bbox`` wins over it).
    """
    settings = config.catalogue
    base = base_url.rstrip("/")
    home = f"{base}/feeds"
    off = off or {}
    listed = [] if restricted and not settings.list_restricted else [facts for facts in feeds if facts.name not in off]
    chosen = settings.coverage_bbox or (None if restricted else events_bbox)
    spatial = Spatial(chosen) if chosen is not None else None
    datasets = []
    for facts in listed:
        own = settings.feeds.get(facts.name)
        title, description = _FEED_TEXT.get(facts.name, (facts.name, facts.name))
        url = f"{base}/feeds/{facts.name}"
        datasets.append(Dataset(
            identifier=facts.name,
            uri=f"{home}#dataset-{facts.name}",
            title=own.title if own and own.title else title,
            description=own.description if own and own.description else description,
            license=_feed_license(facts.name, own.license if own else None, config),
            distributions=(Distribution(
                uri=f"{home}#distribution-{facts.name}", title=facts.name, url=url, media_type=facts.media_type,
                byte_size=None if restricted else facts.byte_size, downloadable=not restricted,
            ),),
            issued_ms=facts.first_published_ms,
            modified_ms=facts.published_ms,
            spatial=spatial,
            restricted=restricted,
            events=None if restricted else facts.events,
            downloads=None if restricted else facts.downloads,
            conforms_to=_FEED_SPECS.get(facts.name),
            continuously_updated=True,
        ))
    links = {"html": home, "json": f"{home}/catalog.json", "jsonld": f"{home}/catalog.jsonld"}
    catalogue = catalogue_header(config, uri=home, landing_page=home, links=links, datasets=datasets)
    unlisted = None
    if not any(facts.name not in off for facts in feeds):
        unlisted = "nothing has been published here yet"
    elif restricted and not settings.list_restricted:
        unlisted = ("the feeds here need a partner token and the publisher does not list them here "
                    "(catalogue.list_restricted is off), not even to partners: ask the publisher for a token "
                    "and the feeds' addresses")
    return replace(catalogue, off=dict(off), unlisted=unlisted)


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One file an export wrote: its name beside the catalogue (or its URL), media type and size."""

    name: str
    url: str
    media_type: str
    byte_size: int


def export_catalogue(
    config: Config, files: Sequence[ExportFile], *, uri: str, exported_ms: int,
    events: int, period: tuple[int | None, int | None], bbox: BBox | None, crowd: bool, described: str,
) -> Catalogue:
    """The catalogue written beside an export: one dataset (the events), one distribution per file.

    ``uri`` is the catalogue's own address (``catalog.jsonld``, or its URL when the files' URL is
    known); ``described`` says in words which events it holds (the filters).
    """
    publish = config.publish
    publisher = config.catalogue.publisher_name or publish.publisher
    what = "Road closures, roadworks and Waze crowd reports" if crowd else "Road closures and roadworks"
    crowd_note = (" Crowd reports come from the Waze partner feed and are published with Waze's consent."
                  if crowd else "")
    dataset = Dataset(
        identifier="events",
        uri=f"{uri}#dataset-events",
        title=f"{what} of {publisher}: history",
        description=f"{what} recorded by {publisher}, {described}, each with its times, status and "
        f"geometry (WGS84).{crowd_note}",
        # the city cannot license Waze's data, even when Waze consents to its republication
        license=None if crowd else catalogue_license(config),
        rights=(f"Holds Waze crowd reports, republished with Waze's consent under Waze's terms, not under the "
                f"city's licence ({catalogue_license(config)}), which covers the city's own events."
                if crowd else None),
        distributions=tuple(
            Distribution(uri=f"{uri}#distribution-{file.name}", title=file.name, url=file.url,
                         media_type=file.media_type, byte_size=file.byte_size)
            for file in files
        ),
        issued_ms=exported_ms,
        modified_ms=exported_ms,  # a snapshot: it does not change after it is made
        spatial=Spatial(bbox) if bbox is not None else None,
        events=events,
        temporal=period if period != (None, None) else None,
    )
    server = config.catalogue.base_url
    header = catalogue_header(config, uri=uri, landing_page=f"{server.rstrip('/')}/feeds" if server else uri,
                              datasets=[dataset])
    # the catalogue of an export is about the export, not the live feeds the [catalogue] texts describe
    return replace(header, title=dataset.title, description=dataset.description)


def catalogue_license(config: Config) -> str:
    """``catalogue.license``, else ODbL when a [network] places the closures on OpenStreetMap, else CC0.

    >>> catalogue_license(Config()).endswith("zero/1.0/")
    True
    """
    if config.catalogue.license is not None:
        return config.catalogue.license
    return ODBL_URL if config.network is not None else CC0_URL


def _feed_license(feed: str, own: str | None, config: Config) -> str:
    """A feed's own licence, else the catalogue's; WZDx and CWZ name CC0 only when the city declared
    its closures CC0 (publish.license): the only licence those formats allow, not a default."""
    declared = config.publish.license
    if feed.startswith(("wzdx.", "cwz.")) and declared is not None and declared.rstrip("/") == CC0_URL.rstrip("/"):
        return CC0_URL
    return own or catalogue_license(config)


def media_type(content_type: str) -> str:
    """The media type of a Content-Type, parameters left out.

    >>> media_type("application/xml; charset=utf-8")
    'application/xml'
    """
    return content_type.split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------------- renderings


def _literal(value: str, datatype: str) -> dict[str, str]:
    return {"@value": value, "@type": datatype}


def _when(ms: int) -> dict[str, str]:
    return _literal(iso(ms) or "", "xsd:dateTime")


def to_jsonld(catalogue: Catalogue) -> dict[str, Any]:
    """DCAT-AP as JSON-LD: a ``dcat:Catalog`` with its ``dcat:Dataset`` and ``dcat:Distribution`` nodes."""
    publisher: dict[str, Any] = {"@type": "foaf:Agent", "foaf:name": catalogue.publisher.name}
    if catalogue.publisher.url:
        publisher["foaf:homepage"] = {"@id": catalogue.publisher.url}
    contact: dict[str, Any] | None = None
    if catalogue.contact_name or catalogue.contact_email:
        contact = {"@type": "vcard:Kind", "vcard:fn": catalogue.contact_name or catalogue.publisher.name}
        if catalogue.contact_email:
            contact["vcard:hasEmail"] = {"@id": f"mailto:{catalogue.contact_email}"}
    document: dict[str, Any] = {
        "@context": dict(CONTEXT),
        "@id": catalogue.uri,
        "@type": "dcat:Catalog",
        "dct:title": catalogue.title,
        "dct:description": catalogue.description,
        "dct:publisher": publisher,
        "dct:license": {"@id": catalogue.license},
        "foaf:homepage": {"@id": catalogue.landing_page},
        "dcat:dataset": [_dataset_jsonld(d, catalogue, publisher, contact) for d in catalogue.datasets],
    }
    modified = [d.modified_ms for d in catalogue.datasets if d.modified_ms is not None]
    if modified:
        document["dct:modified"] = _when(max(modified))
    return document


def _dataset_jsonld(
    dataset: Dataset, catalogue: Catalogue, publisher: dict[str, Any], contact: dict[str, Any] | None
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "@id": dataset.uri,
        "@type": "dcat:Dataset",
        "dct:identifier": dataset.identifier,
        "dct:title": dataset.title,
        "dct:description": dataset.description,
        "dct:publisher": publisher,
        **_licensing(dataset),
        "dcat:keyword": list(catalogue.keywords),
        "dcat:theme": {"@id": f"{_EU}/data-theme/TRAN"},
        "dcat:landingPage": {"@id": catalogue.landing_page},
        "dct:accessRights": {"@id": f"{_EU}/access-right/{'RESTRICTED' if dataset.restricted else 'PUBLIC'}"},
        "dcat:distribution": [_distribution_jsonld(d, dataset) for d in dataset.distributions],
    }
    if contact is not None:
        node["dcat:contactPoint"] = contact
    if dataset.issued_ms is not None:
        node["dct:issued"] = _when(dataset.issued_ms)
    if dataset.modified_ms is not None:
        node["dct:modified"] = _when(dataset.modified_ms)
    if dataset.spatial is not None:
        node["dct:spatial"] = {
            "@type": "dct:Location",
            "dcat:bbox": _literal(dataset.spatial.wkt, "gsp:wktLiteral"),
            "locn:geometry": _literal(orjson.dumps(dataset.spatial.geometry).decode(), "gsp:geoJSONLiteral"),
        }
    if dataset.temporal is not None:
        start, end = dataset.temporal
        period: dict[str, Any] = {"@type": "dct:PeriodOfTime"}
        if start is not None:
            period["dcat:startDate"] = _when(start)
        if end is not None:
            period["dcat:endDate"] = _when(end)
        node["dct:temporal"] = period
    if dataset.conforms_to:
        node["dct:conformsTo"] = {"@id": dataset.conforms_to}
    if dataset.continuously_updated:
        node["dct:accrualPeriodicity"] = {"@id": f"{_EU}/frequency/UPDATE_CONT"}
    if dataset.events is not None:
        node["void:entities"] = _literal(str(dataset.events), "xsd:nonNegativeInteger")
    if dataset.downloads is not None:  # schema.org's way to say how often it was downloaded
        node["schema:interactionStatistic"] = {
            "@type": "schema:InteractionCounter",
            "schema:interactionType": {"@id": "http://schema.org/DownloadAction"},
            "schema:userInteractionCount": _literal(str(dataset.downloads), "xsd:nonNegativeInteger"),
        }
    return node


def _licensing(dataset: Dataset) -> dict[str, Any]:
    terms: dict[str, Any] = {}
    if dataset.license is not None:
        terms["dct:license"] = {"@id": dataset.license}
    if dataset.rights:
        terms["dct:rights"] = {"@type": "dct:RightsStatement", "rdfs:label": dataset.rights}
    return terms


def _distribution_jsonld(distribution: Distribution, dataset: Dataset) -> dict[str, Any]:
    node: dict[str, Any] = {
        "@id": distribution.uri,
        "@type": "dcat:Distribution",
        "dct:title": distribution.title,
        "dcat:accessURL": {"@id": distribution.url},
        "dcat:mediaType": {"@id": f"{_IANA}/{distribution.media_type}"},
        **_licensing(dataset),
    }
    if distribution.file_type:
        node["dct:format"] = {"@id": f"{_EU}/file-type/{distribution.file_type}"}
    if distribution.downloadable:
        node["dcat:downloadURL"] = {"@id": distribution.url}
    if distribution.byte_size is not None:
        node["dcat:byteSize"] = _literal(str(distribution.byte_size), "xsd:nonNegativeInteger")
    if dataset.issued_ms is not None:
        node["dct:issued"] = _when(dataset.issued_ms)
    if dataset.modified_ms is not None:
        node["dct:modified"] = _when(dataset.modified_ms)
    return node


def to_json(catalogue: Catalogue) -> dict[str, Any]:
    """The catalogue as plain JSON for scripts: the same facts, no RDF."""
    return {
        "title": catalogue.title,
        "description": catalogue.description,
        "publisher": {"name": catalogue.publisher.name, "url": catalogue.publisher.url},
        "license": catalogue.license,
        "keywords": list(catalogue.keywords),
        "contact": {"name": catalogue.contact_name, "email": catalogue.contact_email},
        "landing_page": catalogue.landing_page,
        "links": dict(catalogue.links),
        "feeds": [_dataset_json(dataset) for dataset in catalogue.datasets],
        "off": dict(catalogue.off),
        "unlisted": catalogue.unlisted,
    }


def _dataset_json(dataset: Dataset) -> dict[str, Any]:
    distribution = dataset.distributions[0]
    record: dict[str, Any] = {
        "name": dataset.identifier,
        "title": dataset.title,
        "description": dataset.description,
        "url": distribution.url,
        "media_type": distribution.media_type,
        "access": "restricted" if dataset.restricted else "open",
        "license": dataset.license,
        "rights": dataset.rights,
        "conforms_to": dataset.conforms_to,
        "issued": iso(dataset.issued_ms),
        "modified": iso(dataset.modified_ms),
        "spatial": None,
    }
    if dataset.spatial is not None:
        record["spatial"] = {"bbox": list(dataset.spatial.bbox), "wkt": dataset.spatial.wkt,
                             "geometry": dataset.spatial.geometry}
    if not dataset.restricted:
        record.update(bytes=distribution.byte_size, events=dataset.events, downloads=dataset.downloads)
    return record
