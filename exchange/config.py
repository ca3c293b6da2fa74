"""The configuration's types: one TOML file validated by pydantic (read by :mod:`exchange.config_file`).

Adapters import these types (``SourceConfig``); this module imports nothing of ``adapters``.
Secrets (partner tokens) are never in the file: a source names the environment variable that
holds its token (``token_env``).

Environment overrides: ``EXCHANGE_DATABASE_URL``, ``EXCHANGE_DATA_DIR``, ``EXCHANGE_TIMEZONE``,
``EXCHANGE_LOG_LEVEL``, and any nested key as ``EXCHANGE_<SECTION>__<KEY>``
(e.g. ``EXCHANGE_LIFECYCLE__END_AFTER_MISSED_POLLS=5``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from exchange.errors import NotFound

__all__ = [
    "SOURCE_NAME",
    "CatalogueConfig",
    "CatalogueFeedConfig",
    "Config",
    "DatabaseConfig",
    "Datex2Settings",
    "ExportConfig",
    "HttpConfig",
    "LifecycleConfig",
    "NetworkConfig",
    "NotifyConfig",
    "PublishConfig",
    "RetentionConfig",
    "ServeConfig",
    "SourceConfig",
    "WebConfig",
    "names_used_twice",
]

DEFAULT_DATA_DIR = Path("~/.local/share/traffic-exchange")


class DatabaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file exchange.db in the data directory. "
        "postgresql://user@host/db selects PostgreSQL (psycopg 3).",
    )


class LifecycleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    end_after_missed_polls: int = Field(
        default=3, ge=1, le=1000,
        description="A crowd event missing from this many consecutive good polls is ended.",
    )
    suspect_ratio: float = Field(
        default=0.2, gt=0, le=1,
        description="A poll whose item count for a kind is below this share of the recent median is "
        "suspect: it ends nothing of that kind.",
    )
    suspect_window: int = Field(default=5, ge=1, le=100, description="How many recent polls form the median.")


class RetentionConfig(BaseModel):
    """How long the store keeps what it no longer needs (``exchange db prune``, and the daemon once a
    day). Every limit is in days; 0 keeps that kind of row forever."""

    model_config = ConfigDict(extra="forbid")
    ended_crowd_days: int = Field(
        default=30, ge=0,
        description="Crowd (Waze) events ended or cancelled this many days ago go, with their revisions and "
        "sightings; never one linked as a confirmation of a city event that is kept.",
    )
    revisions_days: int = Field(
        default=30, ge=0,
        description="Revisions of crowd events older than this go (the events themselves stay while they are "
        "active). City events keep their whole history, as do crowd events that confirm a city event.",
    )
    city_events_days: int = Field(
        default=0, ge=0,
        description="City events (closures) ended or cancelled this many days ago go, with their history and "
        "confirmations; never one in the current publication. 0: kept forever.",
    )
    sync_runs_days: int = Field(
        default=90, ge=0, description="Sync run records older than this go, except each source's newest."
    )
    publish_runs_days: int = Field(
        default=30, ge=0, description="Publish run records older than this go, except the newest."
    )
    notifications_days: int = Field(
        default=90, ge=0,
        description="Notifications sent longer ago than this go, except the newest of each subject (so nothing "
        "is told twice).",
    )
    batch_rows: int = Field(
        default=2000, ge=10, le=100_000,
        description="Rows deleted per transaction: a big prune never holds the store's write lock for long.",
    )


class NetworkConfig(BaseModel):
    """The road network events are matched to. Without this section nothing is matched or clustered."""

    model_config = ConfigDict(extra="forbid")
    path: Path = Field(
        description="OSM XML (.osm, .osm.bz2), OSM PBF, a GeoJSON centerline, an osmnx .graphml, or a cache built by"
        " `exchange network build` (any name)."
    )
    centerline: dict[str, Any] | None = Field(
        default=None, description="For a GeoJSON centerline: which properties hold id, name, road_class, oneway, ..."
    )
    classes: list[str] | None = Field(
        default=None, description="OSM highway classes to keep, for OSM and GraphML (default: drivable)."
    )
    point_radius_m: float = Field(
        default=50.0, gt=0, le=500,
        description="Alerts match edges within this distance (Waze positions downtown are often 30 m or more off); "
                    "an alert naming a street no edge this near carries is looked for twice as far.",
    )
    line_radius_m: float = Field(default=35.0, gt=0, le=500, description="Jam points look this far for edges.")
    cluster_radius_m: float = Field(
        default=25.0, gt=0, le=500,
        description="The spread of one incident's reports where a batch is too small to estimate their GPS noise "
        "(fewer than 20 matched); estimated from each batch otherwise, up to twice this.",
    )
    cluster_window_min: float = Field(
        default=30.0, gt=0, le=1440, description="Reports of one incident are at most this many minutes apart."
    )


#: Open Database License 1.0: OpenStreetMap's, and so that of closures placed on its roads
ODBL_URL = "https://opendatacommons.org/licenses/odbl/1-0/"
CC0_URL = "https://creativecommons.org/publicdomain/zero/1.0/"


class Datex2Settings(BaseModel):
    """``[publish.datex2]``: who the DATEX II feed says published it, and the language of its text."""

    model_config = ConfigDict(extra="forbid")
    country: str = Field(
        default="us", pattern=r"^[A-Za-z]{2}$",
        description="publicationCreator country: the ISO 3166-1 alpha-2 code of the city's country (fr, no, us).",
    )
    national_identifier: str | None = Field(
        default=None, min_length=1, max_length=1024,
        description="publicationCreator nationalIdentifier (the road authority's code); default: publish.reference.",
    )
    language: str = Field(
        default="en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        description="The payload's lang and the language of every text (descriptions, names): e.g. fr, en.",
    )


TargetName = Literal["cifs", "wzdx", "datex2", "cwz"]
#: every target ``publish.targets`` may name, in the order they are published and reported
PUBLISH_TARGETS: tuple[TargetName, ...] = ("cifs", "wzdx", "datex2", "cwz")


class PublishConfig(BaseModel):
    """What goes out: the CIFS and WZDx feeds partners poll."""

    model_config = ConfigDict(extra="forbid")
    keep_ended_h: float = Field(default=24.0, ge=0, description="Ended events stay in CIFS this many hours.")
    on_change: bool = Field(default=True, description="Publish at once after every closure add/update/end.")
    hold_back_failing: bool = Field(
        default=False,
        description="Hold back from the CIFS feeds the events the Waze acceptance lint says Waze would reject.",
    )
    max_hold_back_share: float = Field(
        default=0.2, ge=0, le=1,
        description="A publication in which more than this share of the previously published events would be "
        "held back or disappear is not made: the last good feeds stay served (a swapped network or a renderer "
        "bug must not make Waze drop every closure).",
    )
    interval_s: int = Field(
        default=300, ge=10, description="`exchange run` recomputes the feeds this often (ended closures age out)."
    )
    max_age_s: int = Field(
        default=900, ge=10,
        description="A publication older than this is renewed even when nothing changed (its timestamp moves on).",
    )
    waze_unseen_after_min: int = Field(
        default=60, ge=1,
        description="Warn of a published closure in effect this many minutes and still not seen in the Waze feed.",
    )
    out_dir: Path | None = Field(default=None, description="Also write the feeds to this directory (file sink).")
    cifs_json_shape: Literal["wrapped", "flat"] = Field(
        default="wrapped", description="wrapped: Google's example {incidents: [{incident: {...}}]}; flat: no wrapper."
    )
    publisher: str = Field(default="City", description="WZDx feed_info.publisher and CIFS source name.")
    data_source_id: str = Field(default="city", min_length=1, description="WZDx data source id.")
    reference: str = Field(default="city", min_length=1, description="CIFS <source><reference>.")
    source_url: str | None = Field(default=None, description="CIFS <source><url> and WZDx data source URL.")
    contact_name: str | None = None
    contact_email: str | None = None
    license: str | None = Field(default=None, description=f"WZDx feed licence; only {CC0_URL} is allowed.")
    update_frequency_s: int | None = Field(default=None, ge=1, description="WZDx feed_info.update_frequency.")
    datex2: Datex2Settings = Field(default_factory=Datex2Settings, description="The DATEX II feed's publisher.")
    targets: list[TargetName] = Field(
        default_factory=lambda: list(PUBLISH_TARGETS), min_length=1,
        description="The targets published: cifs (cifs.xml, cifs.json), wzdx (wzdx.geojson), datex2 (datex2.xml), "
        "cwz (cwz.geojson; only when publish.license is the CC0 URL). Each holds back on its own the events it "
        "cannot carry.",
    )
    schema_dir: Path | None = Field(
        default=None,
        description="A directory of official schemas the city obtained (they do not ship): "
        "datex2/DATEXII_3_MessageContainer.xsd (else DATEXII_3_D2Payload.xsd) with the XSDs it includes, and "
        "cwz/ with the CWZ 1.0 JSON schemas. When set, datex2.xml and cwz.geojson are also checked against them.",
    )

    @field_validator("targets")
    @classmethod
    def _targets_once(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"a target is named more than once: {', '.join(repeated)}")
        return value

    @field_validator("license")
    @classmethod
    def _cc0_only(cls, value: str | None) -> str | None:
        if value is not None and value.rstrip("/") != CC0_URL.rstrip("/"):
            raise ValueError(f"WZDx allows only the CC0 licence ({CC0_URL})")
        return value

    @model_validator(mode="after")
    def _datex2_identifier(self) -> PublishConfig:
        # the city's CIFS reference names it already; DATEX II says the same unless told otherwise
        if self.datex2.national_identifier is None:
            self.datex2 = self.datex2.model_copy(update={"national_identifier": self.reference})
        return self


class ServeConfig(BaseModel):
    """Where the feed server listens: `exchange serve`, and `exchange run` unless `--no-serve`."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(default="127.0.0.1", description="Address to listen on; keep 127.0.0.1 behind nginx.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0 picks a free one).")
    tokens: bool = Field(default=True, description="Require a partner token for the feeds.")


#: the feeds a catalogue entry may describe (``publications.feed``); kept here, not imported, as config.py
#: imports nothing of the publishing side
CATALOGUE_FEEDS = ("cifs.xml", "cifs.json", "wzdx.geojson", "datex2.xml", "cwz.geojson")


class CatalogueFeedConfig(BaseModel):
    """``[catalogue.feeds."<feed>"]``: what one feed's catalogue entry says instead of the defaults."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, description="The feed's title in the catalogue.")
    description: str | None = Field(default=None, min_length=1, description="The feed's description.")
    license: str | None = Field(
        default=None, pattern=r"^https?://",
        description="The feed's licence URL, when it differs from catalogue.license (the CIFS feeds may have "
        f"another; the WZDx feed's can only be CC0, {CC0_URL}).",
    )


class CatalogueConfig(BaseModel):
    """``/feeds``: the catalogue of the feeds, for people (HTML) and for open-data portals (DCAT-AP JSON-LD
    that CKAN's ckanext-dcat, uData and data.europa.eu harvest)."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(
        default=None, min_length=1, description="The catalogue's title. Default: \"<publish.publisher> traffic feeds\"."
    )
    description: str = Field(
        default="Road closures and roadworks published by the city, as Waze CIFS (XML and JSON), WZDx GeoJSON "
        "and DATEX II feeds (and Connected Work Zones when the licence allows), updated as they change.",
        min_length=1, description="The catalogue's description.",
    )
    publisher_name: str | None = Field(
        default=None, min_length=1, description="Who publishes the feeds (dct:publisher). Default: publish.publisher."
    )
    publisher_url: str | None = Field(
        default=None, pattern=r"^https?://", description="The publisher's home page (foaf:homepage)."
    )
    license: str | None = Field(
        default=None, pattern=r"^https?://",
        description="Licence URL of the catalogue and of every feed without its own (catalogue.feeds). Default: "
        f"{ODBL_URL} when a [network] places the closures on OpenStreetMap (the geometry is ODbL-derived), "
        f"else CC0 ({CC0_URL}). The WZDx and CWZ feeds are listed as CC0 only when publish.license is CC0.",
    )
    keywords: list[str] = Field(
        default_factory=lambda: ["road closures", "roadworks", "traffic", "WZDx", "CIFS"],
        description="Keywords of every feed (dcat:keyword).",
    )
    contact_name: str | None = Field(
        default=None, min_length=1, description="The contact point's name (dcat:contactPoint). Default: "
        "publish.contact_name.",
    )
    contact_email: str | None = Field(
        default=None, min_length=3, description="The contact point's e-mail. Default: publish.contact_email."
    )
    landing_page: str | None = Field(
        default=None, pattern=r"^https?://",
        description="A page about the feeds on the city's site (dcat:landingPage, foaf:homepage). Default: /feeds.",
    )
    base_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="The public address of this server (e.g. https://traffic.example.org), for the absolute URLs "
        "of the catalogue. Default: the address each request came to (behind nginx, forward Host and "
        "X-Forwarded-Proto and start uvicorn with --forwarded-allow-ips, or set this).",
    )
    coverage_bbox: tuple[float, float, float, float] | None = Field(
        default=None,
        description="The feeds' geographic coverage (dct:spatial) as [min_lon, min_lat, max_lon, max_lat], WGS84. "
        "Default: the extent of the published events, else of the city's stored events.",
    )
    list_restricted: bool = Field(
        default=False,
        description="With serve.tokens (feeds only for partners), also list the feeds in the catalogue: titles, "
        "descriptions, dates and coverage, marked restricted; never download counts, sizes or event counts. "
        "Open feeds are always listed.",
    )
    feeds: dict[str, CatalogueFeedConfig] = Field(
        default_factory=dict,
        description=f"Per feed ({', '.join(CATALOGUE_FEEDS)}): a title, description or licence of its own.",
    )

    @field_validator("feeds")
    @classmethod
    def _known_feeds(cls, value: dict[str, CatalogueFeedConfig]) -> dict[str, CatalogueFeedConfig]:
        for name, feed in value.items():
            if name not in CATALOGUE_FEEDS:
                raise ValueError(f"unknown feed {name!r}; known: {', '.join(CATALOGUE_FEEDS)}")
            if name == "wzdx.geojson" and feed.license is not None and feed.license.rstrip("/") != CC0_URL.rstrip("/"):
                raise ValueError(f"the WZDx feed's licence can only be CC0 ({CC0_URL})")
        return value

    @field_validator("coverage_bbox")
    @classmethod
    def _lon_lat_box(
        cls, value: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if value is not None:
            min_lon, min_lat, max_lon, max_lat = value
            if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
                raise ValueError("expected [min_lon, min_lat, max_lon, max_lat] within range, min before max")
        return value


class ExportConfig(BaseModel):
    """``exchange export``: the history of the city's events as files for an open-data portal."""

    model_config = ConfigDict(extra="forbid")
    include_crowd: bool = Field(
        default=False,
        description="Allow `exchange export --include-crowd` to add the crowd (Waze) events. Only with Waze's "
        "written consent: the Waze partner terms do not allow republishing crowd data.",
    )


class WebConfig(BaseModel):
    """The web face beside the feeds: the operator map (`/map`) and the events API (`/api/*`)."""

    model_config = ConfigDict(extra="forbid")
    access: Literal["operator", "open"] = Field(
        default="operator",
        description="`operator`: /map and /api/* need an operator token (`exchange operator add`); Waze's "
        "terms do not allow republishing crowd data to the public. `open`: anyone who reaches the port.",
    )
    tile_url: str | None = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="The base map's tile URL template ({z}/{x}/{y}); the city's own tile server, or none "
        "(the map then draws the events on a blank background).",
    )
    tile_attribution: str = Field(
        default='&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
        description="The base map's attribution (HTML), shown in the map's corner.",
    )
    secure_cookie: bool = Field(
        default=True,
        description="Mark the sign-in cookie Secure (sent over HTTPS only; browsers also send it to "
        "http://localhost). Turn off only for a plain-HTTP test install.",
    )

    @field_validator("tile_url")
    @classmethod
    def _no_tiles_when_empty(cls, value: str | None) -> str | None:
        # TOML has no null: tile_url = "" is how a config file says "no base map"
        if value is not None and not value.strip():
            return None
        if value is not None and (not re.match(r"^(https?:)?//|^/", value)
                                  or not all(part in value for part in ("{z}", "{x}", "{y}"))):
            raise ValueError("tile_url must be an http(s) URL or a path on this server, with {z}, {x} and {y}")
        return value


class NotifyConfig(BaseModel):
    """Being told: one JSON POST per new held-back event, source state change and closure still unseen in Waze."""

    model_config = ConfigDict(extra="forbid")
    webhook_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="Receives one JSON POST per notification (Slack/Teams/Mattermost incoming webhooks, "
        "Alertmanager-style receivers, a ticketing system).",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Deadline of one POST.")


class HttpConfig(BaseModel):
    """Outbound HTTP: every fetch of a source and every webhook POST."""

    model_config = ConfigDict(extra="forbid")
    proxy: str | None = Field(
        default=None,
        description="Proxy URL for outbound HTTP(S). Unset: HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment.",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of CA certificates to trust (a city's TLS-inspecting proxy). Unset: SSL_CERT_FILE / "
        "SSL_CERT_DIR from the environment, else the certifi bundle.",
    )


class SourceConfig(BaseModel):
    """One ``[[sources]]`` entry. ``kind`` picks the adapter; the keys not declared here are the adapter's own."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(description="Unique name, used on the CLI: lowercase letters, digits, '_', '.', '-' "
                                  "(first a letter or digit), at most 100 characters.")
    kind: str = Field(
        default="waze-feed",
        description="Adapter name (waze-feed, csv, geojson, arcgis, wzdx, cifs, datex2) or a dotted path to a Source "
        "class.",
    )
    enabled: bool = True
    interval_s: int = Field(default=120, ge=5, description="Seconds between polls in `exchange run`.")
    jitter_s: int = Field(default=10, ge=0, description="Random delay added to each poll, seconds.")
    failing_max_interval_s: int = Field(
        default=1800, ge=5,
        description="`exchange run`: a failing source is polled ever less often (its interval doubled per failed "
        "poll in a row) up to this many seconds, so a dead upstream is not hammered.",
    )
    stale_after_s: int | None = Field(
        default=None, ge=1,
        description="Health: the source is Stale when it brought no new data for this long. Default: 15 minutes "
        "(at least 5 intervals) for the Waze feed; city sources only when no poll succeeded for 3 intervals.",
    )
    required: bool = Field(
        default=False, description="/health/sources answers 503 while this source is Offline or SchemaError."
    )
    match_key: str | None = Field(
        default=None, min_length=1,
        description="City sources: the field (CSV column, GeoJSON or ArcGIS property, WZDx property, CIFS field; "
        "dots reach into nested objects) holding an id other sources share, e.g. a permit number. Events of two "
        "sources with a match_key and equal values (trimmed, case-sensitive) are one closure, published once. "
        "An item without a value has no match key; it is not rejected.",
    )
    priority: int = Field(
        default=0, ge=-1_000_000, le=1_000_000,
        description="City sources: of one closure two sources report, the one of the higher priority is published "
        "(a tie goes to the source name first in alphabetical order). Closures typed by an operator come first.",
    )

    @field_validator("name")
    @classmethod
    def _a_source_name(cls, value: str) -> str:
        if not SOURCE_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a source name: lowercase letters, digits, '_', '.', '-' (first a "
                             "letter or digit), at most 100 characters")
        return value

    @property
    def settings(self) -> dict[str, Any]:
        """The keys that belong to the adapter."""
        return dict(self.model_extra or {})


#: what a source name may be (it is typed on the command line and is part of stored event ids' sources)
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")


def names_used_twice(names: Sequence[object]) -> list[tuple[int, str]]:
    """(position, name) of each ``[[sources]]`` name already given to an earlier entry.

    >>> names_used_twice(["waze", "city", "waze", None])
    [(2, 'waze')]
    """
    seen: set[str] = set()
    found = []
    for index, name in enumerate(names):
        if isinstance(name, str):
            if name in seen:
                found.append((index, name))
            seen.add(name)
    return found


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = Field(default="UTC", description="IANA time zone of the city, e.g. America/New_York.")
    data_dir: Path | None = Field(default=None, description="Where the SQLite store and caches live.")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: time, level, logger, message; json: one object per line (log shippers)."
    )
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    network: NetworkConfig | None = None
    publish: PublishConfig = Field(default_factory=PublishConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    catalogue: CatalogueConfig = Field(default_factory=CatalogueConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True, description="The file this was read from.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _unique_sources(self) -> Config:
        twice = names_used_twice([source.name for source in self.sources])
        if twice:
            raise ValueError(f"source name {twice[0][1]!r} is used twice")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def resolved_data_dir(self) -> Path:
        env = os.environ.get("EXCHANGE_DATA_DIR")
        chosen = Path(env) if env else self.data_dir or DEFAULT_DATA_DIR
        return chosen.expanduser()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.resolved_data_dir / 'exchange.db'}"

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none configured"
        raise NotFound(f"unknown source {name!r} (known: {known})")
