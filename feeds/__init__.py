"""Wire formats, pure: bytes in, domain objects out (and back). No I/O here."""

from feeds.waze import FeedItem, WazeSnapshot, parse_waze_feed, read_waze_snapshot, to_event

__all__ = ["FeedItem", "WazeSnapshot", "parse_waze_feed", "read_waze_snapshot", "to_event"]
