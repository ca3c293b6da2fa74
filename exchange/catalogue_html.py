"""The feed catalogue as a page for people (:mod:`exchange.catalogue` describes it; this renders it).

Pure: a :class:`~exchange.catalogue.Catalogue` in, HTML out. Every value is escaped; the DCAT-AP
JSON-LD rides along in a ``<script type="application/ld+json">`` for search engines.
"""

from __future__ import annotations

import html

import orjson

from exchange.catalogue import Catalogue, Dataset, coordinate, to_jsonld
from exchange.output import iso

__all__ = ["to_html"]


def to_html(catalogue: Catalogue) -> str:
    """The catalogue for people: every feed with its address, format, licence, dates and counts.

    The JSON-LD rides along in a ``<script type="application/ld+json">`` (``<`` escaped, so no
    value can close the script element).
    """
    e = html.escape
    embedded = orjson.dumps(to_jsonld(catalogue)).decode().replace("<", "\\u003c")
    contact = ""
    if catalogue.contact_email:
        name = catalogue.contact_name or catalogue.contact_email
        contact = f'<p>Contact: <a href="mailto:{e(catalogue.contact_email)}">{e(name)}</a></p>'
    elif catalogue.contact_name:
        contact = f"<p>Contact: {e(catalogue.contact_name)}</p>"
    publisher = e(catalogue.publisher.name)
    if catalogue.publisher.url:
        publisher = f'<a href="{e(catalogue.publisher.url)}">{publisher}</a>'
    sections = "\n".join(_dataset_html(dataset) for dataset in catalogue.datasets) or (
        f"<p>No feed is listed here: {e(catalogue.unlisted)}.</p>" if catalogue.unlisted
        else "<p>No feed is listed here.</p>")
    sections += "".join(f"\n<p>{e(feed)} is not published: {e(reason)}</p>" for feed, reason in catalogue.off.items())
    alternates = "".join(
        f'<link rel="alternate" type="{kind}" href="{e(catalogue.links[key])}">\n'
        for key, kind in (("jsonld", "application/ld+json"), ("json", "application/json")) if key in catalogue.links
    )
    machine = " · ".join(
        f'<a href="{e(catalogue.links[key])}">{label}</a>'
        for key, label in (("jsonld", "DCAT-AP (JSON-LD)"), ("json", "JSON")) if key in catalogue.links
    )
    nav = '<nav><a href="/map">Operator map</a> · <a href="/docs">API</a></nav>'
    return _PAGE.format(
        title=e(catalogue.title), description=e(catalogue.description), publisher=publisher,
        license=f'<a href="{e(catalogue.license)}">{e(catalogue.license)}</a>', contact=contact,
        sections=sections, alternates=alternates, machine=machine, nav=nav, jsonld=embedded,
    )


def _dataset_html(dataset: Dataset) -> str:
    e = html.escape
    distribution = dataset.distributions[0]
    rows = [
        ("Address", f'<a href="{e(distribution.url)}"><code>{e(distribution.url)}</code></a>'),
        ("Format", f"<code>{e(distribution.media_type)}</code>"
         + (f' (<a href="{e(dataset.conforms_to)}">specification</a>)' if dataset.conforms_to else "")),
        ("Access", "restricted to partners" if dataset.restricted else "open"),
        ("Licence", f'<a href="{e(dataset.license)}">{e(dataset.license)}</a>' if dataset.license
         else e(dataset.rights or "")),
        ("First published", e(iso(dataset.issued_ms) or "")),
        ("Last updated", e(iso(dataset.modified_ms) or "")),
    ]
    if dataset.spatial is not None:
        rows.append(("Coverage", "lon/lat " + e(", ".join(coordinate(v) for v in dataset.spatial.bbox))))
    if not dataset.restricted:
        rows += [("Size", f"{distribution.byte_size} bytes"), ("Events", str(dataset.events)),
                 ("Downloads", str(dataset.downloads))]
    cells = "\n".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return (f'<section id="{e(dataset.identifier)}">\n<h2>{e(dataset.title)}</h2>\n<p>{e(dataset.description)}</p>\n'
            f"<table>\n{cells}\n</table>\n</section>")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{alternates}<style>
body {{ font: 16px system-ui, sans-serif; max-width: 54rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
nav {{ margin-bottom: 1rem; }}
section {{ border-top: 1px solid #ddd; padding-top: .5rem; }}
th {{ text-align: left; padding-right: 1rem; font-weight: 600; vertical-align: top; }}
code {{ word-break: break-all; }}
</style>
<script type="application/ld+json">{jsonld}</script>
</head>
<body>
{nav}
<h1>{title}</h1>
<p>{description}</p>
<p>Published by {publisher}; licence {license}.</p>
{contact}
<p>For machines: {machine}.</p>
{sections}
</body>
</html>
"""
