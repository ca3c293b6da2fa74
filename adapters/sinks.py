"""Sinks: publish feed bytes somewhere other than ``exchange serve``.

A city that already runs a web server (or syncs a directory to object storage) can serve the
feeds as static files. :class:`FileSink` writes each feed so that a reader (nginx, ``aws s3
sync``, rsync) sees the old file or the new one, whole, never a truncated mix: the bytes go to a
temporary file in the same directory, are fsynced, and ``os.replace`` swaps the name atomically.

Each file is atomic on its own; across feeds, a reader between two renames may get the new
``cifs.xml`` and the old ``cifs.json`` for a moment.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from exchange.errors import ExchangeError, UsageError

__all__ = ["FileSink"]


class FileSink:
    """Write feeds as files in ``directory``: ``<directory>/<feed name>`` (and ``.gz`` with ``gzip``).

    With ``gzip=True`` a precompressed ``<name>.gz`` is written beside each feed (written first,
    same mtime), for nginx ``gzip_static on``; with ``gzip=False`` a stale ``<name>.gz`` left by an
    earlier run is removed, or nginx would keep serving it. Files get ``mode`` (default world-
    readable: the web server usually runs as another user).
    """

    def __init__(self, directory: Path | str, *, gzip: bool = False, mode: int = 0o644) -> None:
        self.directory = Path(directory)
        self.gzip = gzip
        self.mode = mode

    def push(
        self, feeds: Mapping[str, bytes], *, gzipped: Mapping[str, bytes] | None = None, mtime_ms: int | None = None
    ) -> None:
        """Write every feed atomically, as the publish step rendered (and, in ``gzipped``, compressed) it.

        ``mtime_ms`` (the publication time) becomes the files' mtime, so the web server's
        ``Last-Modified`` is the publication time, not the write time. A sink with ``gzip=True``
        needs the compressed body of every feed: it writes bytes, it does not render or compress.
        """
        for name in feeds:
            _check_name(name)
            if self.gzip and (gzipped is None or name not in gzipped):
                raise UsageError(f"a gzip sink needs the compressed body of {name!r}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExchangeError(f"cannot create {self.directory}: {exc.strerror or exc}") from exc
        for name, body in feeds.items():
            if self.gzip and gzipped is not None:
                self._write(name + ".gz", gzipped[name], mtime_ms)
            else:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / (name + ".gz")).unlink()
            self._write(name, body, mtime_ms)
        _fsync_directory(self.directory)

    def _write(self, name: str, data: bytes, mtime_ms: int | None) -> None:
        target = self.directory / name
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        except OSError as exc:
            raise ExchangeError(f"cannot write in {self.directory}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchmod(handle.fileno(), self.mode)
                os.fsync(handle.fileno())
            if mtime_ms is not None:
                os.utime(temp, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))
            Path(temp).replace(target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                Path(temp).unlink()
            raise ExchangeError(f"cannot write {target}: {exc.strerror or exc}") from exc


def _check_name(name: str) -> None:
    """A feed name is one plain file name: no directories, no hidden or relative names."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise UsageError(f"feed name {name!r} is not a plain file name")


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable too (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
