"""Recall of ``cluster_reports`` where a report's direction is unknown (Waze heading 0)."""

from __future__ import annotations

import numpy as np

from geo.dedup import Reports, cluster_reports


def _reports_at(x: list[float], heading: list[float]) -> Reports:
    """Reports of one family at one time on an east-west line (no network: compared where reported)."""
    n = len(x)
    return Reports(x=np.asarray(x, dtype=float), y=np.zeros(n), time_s=np.zeros(n), family=["crash"] * n,
                   edge=np.full(n, -1, dtype=np.int64), offset=np.full(n, np.nan),
                   heading=np.asarray(heading, dtype=float))


def test_a_report_of_unknown_direction_joins_the_only_direction_that_can_take_it() -> None:
    """Heading 0 among an eastbound incident's reports, with a westbound report 70 m away: both
    directions are near, but only the eastbound cluster passes the merge test for it (a single
    report 70 m off is another incident), so it joins that cluster instead of staying alone."""
    labels = cluster_reports(_reports_at([0.0, 3.0, -3.0, 0.5, 70.0], [90.0, 90.0, 90.0, 0.0, 270.0]))
    assert labels.tolist() == [0, 0, 0, 0, 1]


def test_a_report_of_unknown_direction_stays_alone_where_both_directions_could_take_it() -> None:
    """The same, with the westbound incident at the same place: it could be either's, and joining
    one would fuse the two."""
    eastbound, westbound = [0.0, 3.0, -3.0], [1.0, -1.0, 2.0]
    labels = cluster_reports(_reports_at([*eastbound, *westbound, 0.5], [90.0] * 3 + [270.0] * 3 + [0.0]))
    assert len({*labels[:3].tolist()}) == 1 and len({*labels[3:6].tolist()}) == 1 and labels[0] != labels[3]
    assert labels[6] not in set(labels[:6].tolist())


def test_a_report_of_unknown_direction_joins_no_cluster_beyond_the_time_window() -> None:
    """Near only one direction, but the cluster's reports came more than the window earlier."""
    reports = _reports_at([0.0, 3.0, -3.0, 0.5, 70.0], [90.0, 90.0, 90.0, 0.0, 270.0])
    reports.time_s = np.array([0.0, 0.0, 0.0, 1500.0, 1500.0])
    labels = cluster_reports(reports, window_s=1200.0)
    assert labels[3] not in set(labels[:3].tolist())


def test_a_report_of_unknown_direction_is_not_kept_from_its_street_by_the_cross_street() -> None:
    """Found by a second generator: a report without a heading among an eastbound crash's reports
    stayed alone because of a northbound crash round the corner, 37 m off. Matched to the east-west
    street it can only travel east or west on it; the cross street is neither way, so it joins."""
    from geo.match import match_points
    from geo.network import build_network
    from geo.types import WayInput

    lat, m_lon, m_lat = 48.0, 111_320.0 * np.cos(np.radians(48.0)), 111_320.0
    nodes = {1: (10.0, lat), 2: (10.002, lat), 3: (10.004, lat),
             4: (10.002, lat - 0.0015), 5: (10.002, lat + 0.0015)}
    network = build_network(nodes, [WayInput(1, [1, 2, 3], {"highway": "secondary", "name": "East St"}),
                                    WayInput(2, [4, 2, 5], {"highway": "secondary", "name": "North St"})])
    east = [(28.0, -2.0), (30.0, -2.5), (32.0, -1.5), (31.0, -2.0)]  # metres from the junction; the last: no heading
    north = [(2.0, 19.0), (2.5, 20.0), (1.5, 21.0)]
    offsets = np.array(east + north)
    lon, lat_ = 10.002 + offsets[:, 0] / m_lon, lat + offsets[:, 1] / m_lat
    heading = np.array([90.0, 90.0, 90.0, 0.0, 2.0, 2.0, 2.0])
    matched = match_points(network, lon, lat_, heading=heading)
    x, y = network.frame.to_metric(lon, lat_)
    reports = Reports(x=np.asarray(x), y=np.asarray(y), time_s=np.zeros(7), family=["crash"] * 7,
                      edge=matched.edge, offset=matched.offset_m, heading=heading)
    labels = cluster_reports(reports, network).tolist()
    assert labels == [0, 0, 0, 0, 1, 1, 1]
