"""The feed catalogue at /feeds (DCAT-AP JSON-LD read with rdflib, JSON, HTML) and CORS on open feeds.

The demo store (Waze snapshots replayed, the city's closures synced and published) is served by
the real app on uvicorn, open (no token) or restricted (partner tokens required).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from sqlalchemy import select, text

from exchange.config import CATALOGUE_FEEDS, ODBL_URL, Config
from exchange.publications import FEEDS
from exchange.schema import downloads, publications
from exchange.targets import off_feeds
from tests.support.serving import PLAIN, bodies, publish, running, wait_for
from tests.support.webdata import DemoSite, demo_site

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
EU = "http://publications.europa.eu/resource/authority"
# rdflib 7's JSON-LD parser builds a ConjunctiveGraph of its own, deprecated by rdflib itself
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
CORS_HEADERS = ("access-control-allow-origin", "access-control-expose-headers", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-max-age")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    extra = ('[catalogue]\npublisher_url = "https://oakland.example.org"\n'
             'contact_email = "traffic@oakland.example.org"\n'
             '[catalogue.feeds."cifs.xml"]\ntitle = "Closures for navigation apps"\n'
             'license = "https://opendatacommons.org/licenses/by/1-0/"\n')
    with demo_site(tmp_path_factory.mktemp("catalogue"), extra) as built:
        yield built


def stored(site: DemoSite) -> dict[str, Any]:
    with site.engine.connect() as conn:
        return {row.feed: row for row in conn.execute(select(publications))}


def graph_of(response: httpx.Response) -> Graph:
    return Graph().parse(data=response.text, format="json-ld")


def datasets_by_url(graph: Graph) -> dict[str, tuple[URIRef, URIRef]]:
    """accessURL -> (dataset, distribution)."""
    found = {}
    for dataset in graph.subjects(RDF.type, DCAT.Dataset):
        for distribution in graph.objects(dataset, DCAT.distribution):
            found[str(graph.value(distribution, DCAT.accessURL))] = (dataset, distribution)
    return found


def test_every_published_feed_is_a_dcat_dataset_with_a_distribution(site: DemoSite) -> None:
    rows = stored(site)
    with running(site.engine, require_token=False, config=site.config) as url:
        response = httpx.get(f"{url}/feeds/catalog.jsonld")
        negotiated = httpx.get(f"{url}/feeds", headers={"Accept": "application/ld+json"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/ld+json"
    assert negotiated.headers["content-type"] == "application/ld+json" and negotiated.headers["vary"] == "Accept"
    graph = graph_of(response)
    assert graph.isomorphic(graph_of(negotiated))
    catalogs = list(graph.subjects(RDF.type, DCAT.Catalog))
    assert catalogs == [URIRef(f"{url}/feeds")]
    found = datasets_by_url(graph)
    published = [name for name in FEEDS if name not in off_feeds(site.config)]
    assert set(found) == {f"{url}/feeds/{name}" for name in published}
    for name in published:
        dataset, distribution = found[f"{url}/feeds/{name}"]
        row = rows[name]
        assert (catalogs[0], DCAT.dataset, dataset) in graph
        for term in (DCT.title, DCT.description, DCT.publisher, DCT.license, DCT.issued, DCT.modified, DCT.spatial):
            assert graph.value(dataset, term) is not None, f"{name}: no {term}"
        assert graph.value(graph.value(dataset, DCT.publisher), Namespace("http://xmlns.com/foaf/0.1/").name) == \
            Literal("Demo City of West Oakland")
        issued, modified = graph.value(dataset, DCT.issued), graph.value(dataset, DCT.modified)
        assert isinstance(issued, Literal) and isinstance(modified, Literal)
        assert round(issued.toPython().timestamp() * 1000) == row.first_published_ms
        assert round(modified.toPython().timestamp() * 1000) == row.published_ms
        bbox = graph.value(graph.value(dataset, DCT.spatial), DCAT.bbox)
        assert str(bbox).startswith("POLYGON((-122.3") and bbox.datatype == URIRef(
            "http://www.opengis.net/ont/geosparql#wktLiteral")
        assert str(graph.value(dataset, DCT.accessRights)) == f"{EU}/access-right/PUBLIC"
        media = row.content_type.split(";")[0]
        assert str(graph.value(distribution, DCAT.mediaType)) == f"http://www.iana.org/assignments/media-types/{media}"
        size = graph.value(distribution, DCAT.byteSize)
        assert isinstance(size, Literal) and size.toPython() == len(row.body)
        assert str(graph.value(distribution, DCAT.downloadURL)) == f"{url}/feeds/{name}"
    licence = {name: str(graph.value(found[f"{url}/feeds/{name}"][0], DCT.license))
               for name in ("cifs.xml", "cifs.json", "wzdx.geojson")}
    # trial finding: CC0 was declared for closures placed on OpenStreetMap (the demo's [network]), whose
    # geometry is ODbL-derived; a feed's own licence is the city's choice
    assert licence == {"cifs.xml": "https://opendatacommons.org/licenses/by/1-0/", "cifs.json": ODBL_URL,
                       "wzdx.geojson": ODBL_URL}, "no CC0 unless the city declared it (publish.license)"
    titles = {name: str(graph.value(found[f"{url}/feeds/{name}"][0], DCT.title)) for name in published}
    assert titles["cifs.xml"] == "Closures for navigation apps"


def test_json_and_html_for_scripts_and_people(site: DemoSite) -> None:
    rows = stored(site)
    with running(site.engine, require_token=False, config=site.config, refresh_s=0.05, flush_s=0.05) as url:
        for _ in range(2):
            assert httpx.get(f"{url}/feeds/wzdx.geojson", headers=PLAIN).status_code == 200

        def downloaded() -> int:
            with site.engine.connect() as conn:
                return int(conn.execute(select(downloads.c.count).where(
                    downloads.c.feed == "wzdx.geojson", downloads.c.partner == "-")).scalar() or 0)

        wait_for(lambda: downloaded() >= 2, what="the downloads flushed")
        as_json = httpx.get(f"{url}/feeds/", headers={"Accept": "application/json"})
        explicit = httpx.get(f"{url}/feeds/catalog.json", headers={"Accept": "text/html"})
        page = httpx.get(f"{url}/feeds")
        browser = httpx.get(f"{url}/feeds/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        refused = httpx.get(f"{url}/feeds", headers={"Accept": "text/csv"})
        home = httpx.get(f"{url}/", follow_redirects=False)
    assert as_json.headers["content-type"] == "application/json" and as_json.headers["vary"] == "Accept"
    assert explicit.json() == as_json.json(), "an explicit path answers whatever Accept says"
    document = as_json.json()
    assert document["publisher"] == {"name": "Demo City of West Oakland", "url": "https://oakland.example.org"}
    assert document["contact"]["email"] == "traffic@oakland.example.org"
    feeds = {feed["name"]: feed for feed in document["feeds"]}
    off = off_feeds(site.config)
    assert set(feeds) == set(FEEDS) - set(off)
    assert document["off"] == off and off["cwz.geojson"].startswith("cwz: off: "), "the demo's CWZ is off: why"
    assert "cwz.geojson is not published: cwz: off: " in page.text
    for name, feed in feeds.items():
        assert feed["url"] == f"{url}/feeds/{name}" and feed["access"] == "open"
        assert feed["bytes"] == len(rows[name].body) and feed["events"] == rows[name].events == 3
        assert feed["spatial"]["wkt"].startswith("POLYGON((")
    assert feeds["wzdx.geojson"]["downloads"] == downloaded() >= 2
    assert feeds["wzdx.geojson"]["media_type"] == "application/geo+json"

    assert page.headers["content-type"] == "text/html; charset=utf-8" and browser.text == page.text
    for expected in ("Closures for navigation apps", f"{url}/feeds/cifs.json", "/feeds/catalog.jsonld",
                     'href="/map"', 'href="/docs"', '<script type="application/ld+json">'):
        assert expected in page.text
    assert refused.status_code == 406
    assert home.status_code == 302 and home.headers["location"] == "/feeds"  # never from the Host header


def test_open_feeds_answer_cors_and_its_preflight(site: DemoSite) -> None:
    origin = {"Origin": "https://dashboard.example.org"}
    preflight = {**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "if-none-match"}
    with running(site.engine, require_token=False, config=site.config) as url:
        answered = httpx.options(f"{url}/feeds/cifs.json", headers=preflight)
        got = httpx.get(f"{url}/feeds/cifs.json", headers=origin)
        head = httpx.head(f"{url}/feeds/cifs.json", headers=origin)
        revalidated = httpx.get(f"{url}/feeds/cifs.json", headers={**origin, "If-None-Match": got.headers["etag"]})
        catalogue = httpx.options(f"{url}/feeds", headers=preflight)
    assert answered.status_code == 204
    assert answered.headers["access-control-allow-origin"] == "*"
    assert set(answered.headers["access-control-allow-methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    allowed = answered.headers["access-control-allow-headers"].lower()
    assert all(name in allowed for name in ("if-none-match", "if-modified-since", "accept-encoding"))
    assert int(answered.headers["access-control-max-age"]) > 0
    assert revalidated.status_code == 304
    for response in (got, head, revalidated):
        assert response.headers["access-control-allow-origin"] == "*"
        exposed = {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}
        assert exposed == {"etag", "last-modified", "content-length"}
    assert catalogue.status_code == 204 and catalogue.headers["access-control-allow-origin"] == "*"


def test_restricted_feeds_send_no_cors_and_stay_out_of_the_catalogue(site: DemoSite) -> None:
    code, token, err = site.cli("partner", "add", "acme")
    assert code == 0, err
    preflight = {"Origin": "https://x.example.org", "Access-Control-Request-Method": "GET"}
    with running(site.engine, require_token=True, config=site.config) as url:
        refused = httpx.get(f"{url}/feeds/cifs.xml", headers={"Origin": "https://x.example.org"})
        allowed = httpx.get(f"{url}/feeds/cifs.xml", headers={"Authorization": f"Bearer {token.strip()}",
                                                              "Origin": "https://x.example.org"})
        options = httpx.options(f"{url}/feeds/cifs.xml", headers=preflight)
        graph = graph_of(httpx.get(f"{url}/feeds/catalog.jsonld"))
        listing = httpx.get(f"{url}/feeds/catalog.json")
        page = httpx.get(f"{url}/feeds", headers={"Accept": "text/html"})
    assert (refused.status_code, allowed.status_code) == (401, 200)
    assert "HTTP Basic" in refused.text  # every way a token is taken, as the WWW-Authenticate header offers
    # an empty catalogue says why, for the partner who finds it empty
    assert "No feed is listed here: the feeds here need a partner token" in page.text
    assert "list_restricted" in listing.json()["unlisted"] and "not even to partners" in listing.json()["unlisted"]
    assert options.status_code == 405
    for response in (refused, allowed, options):
        assert not [name for name in CORS_HEADERS if name in response.headers], response.headers
    assert list(graph.subjects(RDF.type, DCAT.Dataset)) == []
    assert listing.json()["feeds"] == [] and listing.headers["access-control-allow-origin"] == "*"


def test_restricted_feeds_listed_on_request_without_what_partners_keep(site: DemoSite) -> None:
    config = site.config.model_copy(update={"catalogue": site.config.catalogue.model_copy(
        update={"list_restricted": True})})
    with running(site.engine, require_token=True, config=config) as url:
        response = httpx.get(f"{url}/feeds/catalog.jsonld")
        listing = httpx.get(f"{url}/feeds/catalog.json").json()
        page = httpx.get(f"{url}/feeds").text
    graph = graph_of(response)
    found = datasets_by_url(graph)
    assert set(found) == {f"{url}/feeds/{name}" for name in FEEDS if name not in off_feeds(config)}
    for dataset, distribution in found.values():
        assert str(graph.value(dataset, DCT.accessRights)) == f"{EU}/access-right/RESTRICTED"
        assert graph.value(dataset, DCT.issued) is not None and graph.value(dataset, DCT.title) is not None
        assert graph.value(distribution, DCAT.byteSize) is None and graph.value(distribution, DCAT.downloadURL) is None
        assert graph.value(dataset, DCT.spatial) is None, "the published events' extent is the partners'"
    assert "rdfs.org/ns/void#entities" not in response.text and "interactionStatistic" not in response.text
    for feed in listing["feeds"]:
        assert feed["access"] == "restricted"
        assert not {"bytes", "events", "downloads"} & set(feed)
    for document in (response.text, str(listing), page):
        assert "token" not in document.lower() and "acme" not in document


def test_home_leads_to_the_public_catalogue_never_to_the_requests_host(site: DemoSite) -> None:
    """Found in a cold trial: `/` redirected to the request's Host (`Host: evil.example` led there)."""
    public = site.config.model_copy(update={"catalogue": site.config.catalogue.model_copy(
        update={"base_url": "https://data.oakland.example.org/traffic/"})})
    for config, expected in ((site.config, "/feeds"), (public, "https://data.oakland.example.org/traffic/feeds")):
        with running(site.engine, require_token=False, config=config) as url:
            home = httpx.get(f"{url}/", headers={"Host": "evil.example"})
        assert (home.status_code, home.headers["location"]) == (302, expected)


def test_the_icon_every_browser_asks_for_is_no_404(site: DemoSite) -> None:
    """Found in a cold trial: the catalogue page logged a console error for /favicon.ico."""
    with running(site.engine, require_token=False, config=site.config) as url:
        icon = httpx.get(f"{url}/favicon.ico")
    assert (icon.status_code, icon.content) == (204, b"")


def test_the_config_knows_every_feed() -> None:
    assert CATALOGUE_FEEDS == FEEDS, "[catalogue.feeds] keys are checked against exchange.config.CATALOGUE_FEEDS"


def test_first_publication_is_kept_across_publications(tmp_path: Path) -> None:
    from exchange.db import open_store

    engine = open_store(f"sqlite:///{tmp_path / 'exchange.db'}", auto_upgrade=True)
    try:
        publish(engine, bodies(1), at_ms=1_772_463_600_000)
        publish(engine, bodies(2), at_ms=1_772_467_200_000)
        with engine.connect() as conn:
            kept = {row.feed: (row.first_published_ms, row.published_ms) for row in conn.execute(select(publications))}
        assert kept == dict.fromkeys(FEEDS, (1_772_463_600_000, 1_772_467_200_000))
        with running(engine, require_token=False, config=Config()) as url:
            feeds = httpx.get(f"{url}/feeds/catalog.json").json()["feeds"]
        dates = {(f["issued"], f["modified"]) for f in feeds}
        assert dates == {("2026-03-02T15:00:00.000Z", "2026-03-02T16:00:00.000Z")}
        assert {f["spatial"] for f in feeds} == {None}, "no event, no coverage"
    finally:
        engine.dispose()


def test_a_store_that_published_nothing_yet_says_so(tmp_path: Path) -> None:
    from exchange.db import open_store

    engine = open_store(f"sqlite:///{tmp_path / 'exchange.db'}", auto_upgrade=True)
    try:
        with running(engine, require_token=False, config=Config()) as url:
            listing = httpx.get(f"{url}/feeds/catalog.json").json()
            page = httpx.get(f"{url}/feeds", headers={"Accept": "text/html"}).text
    finally:
        engine.dispose()
    assert listing["feeds"] == [] and listing["unlisted"] == "nothing has been published here yet"
    assert "No feed is listed here: nothing has been published here yet." in page


def test_migration_0011_dates_a_stored_publication_by_its_oldest_run(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from exchange.db import open_store, upgrade

    url = f"sqlite:///{tmp_path / 'exchange.db'}"
    old = create_engine(url)
    upgrade(old, "0010")
    with old.begin() as conn:
        for feed, at in (("cifs.xml", 1_772_467_200_000), ("wzdx.geojson", 1_772_400_000_000)):
            conn.execute(text("INSERT INTO publications (feed, published_ms, etag, content_type, body, body_gzip, "
                              "events) VALUES (:feed, :at, '\"e\"', 'application/xml', :b, :b, 1)"),
                         {"feed": feed, "at": at, "b": b"<incidents/>"})
        conn.execute(text("INSERT INTO publish_runs (at_ms, status, events, held_back) VALUES "
                          "(1772450000000, 'published', 1, 0), (1772440000000, 'failed', 0, 0)"))
    old.dispose()
    engine = open_store(url, auto_upgrade=True)
    with engine.connect() as conn:
        first = dict(conn.execute(text("SELECT feed, first_published_ms FROM publications")).all())
    engine.dispose()
    assert first == {"cifs.xml": 1_772_450_000_000, "wzdx.geojson": 1_772_400_000_000}
