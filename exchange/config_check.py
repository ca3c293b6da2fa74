"""``exchange config check``: is this configuration one the daemon can run with?

Every problem of the file and of the ``EXCHANGE_*`` environment at once
(:func:`exchange.config_file.check_config`), then what only the machine can tell: the token
variables the sources name are set, the outbound HTTP settings are usable (CA bundle, proxy),
the store opens, the road network file exists, and (unless offline) each enabled source answers
a real fetch that its adapter can read. Nothing is stored.

Each check is a :class:`Check`: ``ok``, ``invalid`` (the configuration or environment is wrong:
exit 2) or ``failed`` (something it points at cannot be reached or read: exit 1).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from exchange.config import Config, SourceConfig
from exchange.config_file import Problem, check_config, config_path
from exchange.errors import ConfigError, ExchangeError, SchemaOutdated
from exchange.redaction import register_source_secrets

__all__ = ["Check", "Report", "run_checks"]

Status = Literal["ok", "invalid", "failed", "skipped"]


@dataclass
class Check:
    """One thing checked: what (``store``, ``network``, ``http``, ``source waze``), its status and the detail."""

    what: str
    status: Status
    detail: str
    #: a source's fetch: bytes read, items its adapter found, items it rejected, seconds taken
    facts: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.what}: {self.status}: {self.detail}" if self.detail else f"{self.what}: {self.status}"


@dataclass
class Report:
    """Everything ``config check`` found; ``exit_code`` is 2 for an invalid configuration, 1 for a failed check."""

    config: Path | None
    problems: list[Problem]
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        if self.problems or any(check.status == "invalid" for check in self.checks):
            return 2
        return 1 if any(check.status == "failed" for check in self.checks) else 0

    def as_record(self) -> dict[str, Any]:
        return {
            "config": str(self.config) if self.config else None,
            # valid as `exchange` reads it: no problem in the file and no check that found it invalid
            # (a token variable not set, a source without a url); a failed fetch leaves it valid
            "valid": self.exit_code != 2,
            "exit_code": self.exit_code,
            "problems": [{"location": p.location, "message": p.message, "source": p.source} for p in self.problems],
            "checks": [asdict(check) for check in self.checks],
        }


def run_checks(path: Path | None, *, offline: bool = False) -> Report:
    """Check the configuration at ``path`` (else ``$EXCHANGE_CONFIG``, else the defaults)."""
    path = config_path(path)
    config, problems = check_config(path)
    if config is None:
        return Report(path, problems, [])
    store = check_store(config)
    # a store with its schema to compare the network with (not one created on first use, or upgraded then)
    readable = store.status == "ok" and store.detail.endswith(_SCHEMA_CURRENT)
    checks = [check_http(config), store, check_network(config, store_readable=readable)]
    if config.publish.out_dir is not None:
        checks.append(check_out_dir(config.publish.out_dir))
    for source in config.sources:
        if not source.enabled:
            checks.append(Check(f"source {source.name}", "skipped", "disabled"))
        elif offline:
            checks.append(check_token(source) or check_url(source)
                          or Check(f"source {source.name}", "skipped", "--offline"))
        else:
            checks.append(check_token(source) or reach_source(config, source))
    return Report(path, [], checks)


def check_http(config: Config) -> Check:
    """The CA bundle (``[http] ca_bundle`` or ``SSL_CERT_FILE``) and the proxy can be used."""
    import httpx

    from adapters.http import outbound_client

    try:
        outbound_client(config.http, httpx.Timeout(1.0)).close()
    except ConfigError as exc:
        return Check("http", "invalid", exc.message)
    proxy = "[http] proxy" if config.http.proxy else next(
        (name for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY") if os.environ.get(name)), None
    )
    trust = ("[http] ca_bundle" if config.http.ca_bundle else
             next((name for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(name)), "certifi"))
    route = f"proxy from {proxy}" if proxy else "no proxy"
    return Check("http", "ok", f"{route}, CA certificates from {trust}")


def check_out_dir(out_dir: Path) -> Check:
    """Whether the feeds can be written where ``publish.out_dir`` says (by whoever runs the check: run
    it as the service's user); nothing is written."""
    directory = out_dir.expanduser()
    existing = next((folder for folder in (directory, *directory.parents) if folder.exists()), None)
    if existing is None or not existing.is_dir():
        return Check("out_dir", "failed", f"{directory}: {existing or 'its parent'} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == directory else f" (where {directory} would be made)"
        return Check("out_dir", "failed", f"{directory}: {existing}{made} cannot be written by this user")
    return Check("out_dir", "ok", f"{directory}: writable" + ("" if existing == directory else " (to be made)"))


def check_store(config: Config) -> Check:
    """The store opens and its schema is current (a SQLite file not made yet is created on first use)."""
    from sqlalchemy.engine import make_url

    from exchange.db import open_store, redact_url, sqlite_file

    url = config.database_url
    shown = redact_url(url)
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy's ArgumentError and ValueError alike: the URL is the problem
        return Check("store", "invalid", f"database URL {shown} cannot be read")
    file = sqlite_file(parsed)
    if file is not None and not file.exists():
        folder = next((p for p in (file.parent, *file.parent.parents) if p.exists()), None)
        if folder is None or not os.access(folder, os.W_OK):
            return Check("store", "failed", f"{file} does not exist and {file.parent} cannot be created")
        return Check("store", "ok", f"{file} does not exist yet: created on first use")
    try:
        engine = open_store(url, auto_upgrade=False)
    except SchemaOutdated as exc:
        if parsed.get_backend_name() == "sqlite":
            return Check("store", "ok", f"{shown}: its schema is upgraded on first use")
        return Check("store", "failed", exc.message)
    except ExchangeError as exc:
        return Check("store", "failed", exc.message)
    engine.dispose()
    return Check("store", "ok", f"{shown}: {_SCHEMA_CURRENT}")


_SCHEMA_CURRENT = "schema current"


def check_network(config: Config, *, store_readable: bool = False) -> Check:
    """The network file is there, loads, and (with a readable store) is of the store's place: a file of
    another city makes every publish refuse with NetworkElsewhere, which this check should say first."""
    if config.network is None:
        return Check("network", "skipped", "no [network]: events are not matched to roads")
    path = Path(config.network.path).expanduser()
    if not path.is_file():
        return Check("network", "invalid", f"network.path {path} does not exist" if not path.exists()
                     else f"network.path {path} is not a file")
    elsewhere = _network_elsewhere(config) if store_readable else None
    if elsewhere is not None:
        return Check("network", "invalid", elsewhere)
    note = licence_note(config)
    return Check("network", "ok", f"{path} ({path.stat().st_size} bytes)" + (f"; warning: {note}" if note else ""))


def _network_elsewhere(config: Config) -> str | None:
    """Why the network cannot serve this store (it does not load; its area holds none of the store's
    events), or None. Loading builds the network's cache, as the first run would."""
    from exchange.db import open_store
    from exchange.placement import Placement
    from exchange.reroute import events_elsewhere
    from exchange.schema import events

    try:
        engine = open_store(config.database_url, auto_upgrade=False)
        try:
            with engine.connect() as conn:
                if conn.execute(select(events.c.id).limit(1)).first() is None:
                    return None  # nothing to compare: the network is not loaded (nor its cache built) for it
                placement = Placement.from_config(config)
                if placement is None:
                    return None
                elsewhere = events_elsewhere(conn, placement.network.lonlat_bounds())
        finally:
            engine.dispose()
    except ExchangeError as exc:
        return exc.message
    except SQLAlchemyError as exc:  # the store was read a moment ago: said, not raised
        return f"the store cannot be read to compare with the network: {type(exc).__name__}"
    if not elsewhere:
        return None
    return (f"network.path {config.network.path if config.network else ''} holds none of the store's {elsewhere} "
            "event(s) in its area: the file of another place? (publish would refuse it)")


def licence_note(config: Config) -> str | None:
    """What a CC0 ``publish.license`` claims of lines placed on OpenStreetMap (ODbL), or None. The
    config allows no other licence there: one set is CC0."""
    from adapters.osm import is_centerline

    if config.network is None or config.publish.license is None or is_centerline(Path(config.network.path)):
        return None
    return ("publish.license declares CC0, but closures are placed on OpenStreetMap (ODbL): the lines routed "
            "on it are ODbL-derived, which CC0 cannot cover (the WZDx and CWZ feeds say CC0); place them on "
            "the city's own centerline, or leave publish.license unset")


def check_token(source: SourceConfig) -> Check | None:
    """A token variable the source names and the environment lacks (None when all are set)."""
    for key, value in source.settings.items():
        if key.endswith("_env") and isinstance(value, str) and not os.environ.get(value):
            return Check(f"source {source.name}", "invalid", f"environment variable {value} ({key}) is not set")
    return None


def check_url(source: SourceConfig) -> Check | None:
    """A source whose adapter reads a URL and has none (None when it has one, or reads none)."""
    if source.settings.get("url"):
        return None
    from adapters import build_source

    try:
        built = build_source(source)
    except ExchangeError as exc:
        return Check(f"source {source.name}", "invalid", exc.message)
    if hasattr(built.settings, "url") and not built.settings.url:
        return Check(f"source {source.name}", "invalid", "no url: set it in its [[sources]] entry")
    return None


def reach_source(config: Config, source_config: SourceConfig) -> Check:
    """One real fetch of the source with its adapter, read as a poll would read it; nothing is stored."""
    from adapters import build_source
    from adapters.base import Watermark
    from exchange.runtime import stop_requested
    from exchange.sync import every_item_rejected

    what = f"source {source_config.name}"
    register_source_secrets(source_config)
    started = time.perf_counter()
    try:
        source = build_source(source_config, zone=config.zone, http=config.http, should_stop=stop_requested)
        body = source.fetch(Watermark()).body or b""
        snapshot = source.read(body)
    except ConfigError as exc:
        return Check(what, "invalid", exc.message)
    except ExchangeError as exc:
        return Check(what, "failed", exc.message)
    reasons, skipped = _conversion_rejects(source, snapshot)
    reasons = [error.reason for error in snapshot.errors if not error.out_of_scope] + reasons
    skipped += sum(1 for error in snapshot.errors if error.out_of_scope)
    seconds = round(time.perf_counter() - started, 3)
    facts = {"location": source.location, "bytes": len(body), "items": len(snapshot.items),
             "rejected": len(reasons), "seconds": seconds}
    rejected = f", {len(reasons)} rejected (the first: {reasons[0]})" if reasons else ""
    rejected += f", {skipped} of kinds not read" if skipped else ""
    every_one = every_item_rejected(reasons, len(snapshot.items) + len(snapshot.errors) - skipped)
    if every_one:
        return Check(what, "failed", f"{source.location}: {every_one}", facts)
    return Check(what, "ok", f"{source.location}: {len(body)} bytes, {len(snapshot.items)} items{rejected} "
                 f"in {seconds:.2f} s", facts)


def _conversion_rejects(source: Any, snapshot: Any) -> tuple[list[str], int]:
    """Why each item a sync would reject when converting it is rejected (a bad date, shape or type):
    counted with the rows the reading refused, as the sync's summary counts them; and how many are of a
    kind the reader does not take (a weather record in a DATEX II feed: not read, not broken)."""
    from exchange.sync import OutOfScope, convert_item

    converted = [(item, convert_item(source, item, values_checked=snapshot.values_checked)) for item in snapshot.items]
    reasons = [f"{item.source_id}: {reason}" for item, reason in converted
               if isinstance(reason, str) and not isinstance(reason, OutOfScope)]
    return reasons, sum(1 for _item, reason in converted if isinstance(reason, OutOfScope))
