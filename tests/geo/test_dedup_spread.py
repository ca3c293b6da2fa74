"""How far apart one incident's reports may lie: the spread ``cluster_reports`` assumes is a floor,
and each family of reports is clustered again with the spread its own clusters show."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from geo import dedup
from geo.dedup import Reports, cluster_reports
from geo.match import match_points
from geo.network import RoadNetwork, build_network
from geo.types import WayInput

LAT = 48.0
M_PER_DEG_LON = 111_320.0 * np.cos(np.radians(LAT))


def _road() -> RoadNetwork:
    """One straight one-way street eastwards, 15 km, a junction every 150 m."""
    lons = 10.0 + np.arange(0, 101) * 0.002
    nodes = {k + 1: (float(lon), LAT) for k, lon in enumerate(lons)}
    return build_network(nodes, [WayInput(1, list(nodes), {"highway": "primary", "oneway": "yes", "name": "Long St"})])


def _reports(network: RoadNetwork, along_m: list[float], family: list[str]) -> Reports:
    """Reports travelling east at ``along_m`` metres from the street's start, 2 m beside it."""
    rng = np.random.default_rng(3)
    lon = 10.0 + np.asarray(along_m) / M_PER_DEG_LON
    lat = LAT + rng.normal(0.0, 2.0, len(along_m)) / 111_320.0
    heading = np.full(len(along_m), 90.0)
    matched = match_points(network, lon, lat, heading=heading)
    x, y = network.frame.to_metric(lon, lat)
    return Reports(x=np.asarray(x), y=np.asarray(y), time_s=np.zeros(len(along_m)), family=family,
                   edge=matched.edge, offset=matched.offset_m, heading=heading)


def _groups(labels: np.ndarray, members: slice) -> list[int]:
    return sorted(np.unique(labels[members], return_counts=True)[1].tolist())


@pytest.fixture(scope="module")
def crashes_and_jams() -> tuple[RoadNetwork, Reports]:
    """25 pairs of crashes 45 m apart, three reports each within 2 m of it; 25 jam reports' incidents,
    four reports each 30 m apart (from 45 m before it to 45 m past it)."""
    network = _road()
    crashes = [base + shift + offset for base in range(100, 7600, 300) for shift in (0.0, 45.0)
               for offset in (-2.0, 0.0, 2.0)]
    jams = [base + offset for base in range(250, 7750, 300) for offset in (-45.0, -15.0, 15.0, 45.0)]
    return network, _reports(network, crashes + jams, ["crash"] * len(crashes) + ["congestion"] * len(jams))


def test_reports_spread_wider_than_assumed_are_one_incident(crashes_and_jams: tuple[RoadNetwork, Reports],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    network, reports = crashes_and_jams
    labels = cluster_reports(reports, network)
    assert _groups(labels, slice(150, None)) == [4] * 25  # each jam one incident
    monkeypatch.setattr(dedup, "_SPREAD_ROUNDS", 0)  # only the spread assumed (GPS noise and 30 m)
    assert len(_groups(cluster_reports(reports, network), slice(150, None))) > 25


def test_a_family_spread_wide_does_not_widen_another(crashes_and_jams: tuple[RoadNetwork, Reports],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The jams are clustered with their own, wider spread; the crashes with the one assumed, as
    without the jams beside them (one spread for all would be theirs and the jams' pooled)."""
    network, reports = crashes_and_jams
    spreads: list[np.ndarray] = []
    clustered = dedup._clustered

    def recorded(*args: Any, **kwargs: Any) -> np.ndarray:
        spreads.append(args[8])  # the spread, after the edge bearings
        return clustered(*args, **kwargs)

    monkeypatch.setattr(dedup, "_clustered", recorded)
    labels = cluster_reports(reports, network)
    assert _groups(labels, slice(0, 150)) == [3] * 50  # the crashes 45 m apart stay apart
    first, last = spreads[0], spreads[-1]
    # the crashes are clustered once, with the spread assumed; only the jams again, with their own
    assert len(first) == 250 and len(spreads) > 1 and all(len(later) == 100 for later in spreads[1:])
    assert np.all(last > 4 * first[150:])


def test_heavy_tailed_noise_widens_the_spread_assumed() -> None:
    """Found by a second generator: a tenth of the positions 40 m off their road (an urban canyon)
    and the rest 3 m off. The median distance saw only the quiet nine tenths (sigma 4.4 m) and the
    merge test split the far reports off their incidents; their root mean square counts them."""
    n = 100
    across = np.where(np.arange(n) % 10 == 0, 40.0, 3.0)
    reports = Reports(x=np.zeros(n), y=across, time_s=np.zeros(n), family=["crash"] * n,
                      edge=np.zeros(n, dtype=np.int64), offset=np.zeros(n), heading=np.full(n, 90.0))
    variance = dedup._along_variance(reports, np.zeros(n), np.zeros(n), radius_m=25.0, extent_m=30.0)
    assert variance == pytest.approx(0.9 * 3.0**2 + 0.1 * 40.0**2 + 30.0**2 / 12.0)
    quiet = Reports(x=np.zeros(n), y=np.full(n, 3.0), time_s=np.zeros(n), family=["crash"] * n,
                    edge=np.zeros(n, dtype=np.int64), offset=np.zeros(n), heading=np.full(n, 90.0))
    assert dedup._along_variance(quiet, np.zeros(n), np.zeros(n), radius_m=25.0, extent_m=30.0) == pytest.approx(
        (3.0 / 0.6745) ** 2 + 30.0**2 / 12.0)  # all alike: the median's half-normal reading, as before
