"""Sinks: publish feed bytes somewhere other than ``exchange serve``.

A city that already runs a web server (or syncs a directory to object storage) can serve the
feeds as static files. :class:`FileSink` publishes each publication as one set: a reader (nginx,
``aws s3 sync``, rsync) sees the old set or the new one, whole, never a new ``cifs.xml`` beside an
old ``cifs.json``.

How: the configured directory (``publish.out_dir``) is a symbolic link to the current set, a
directory under ``.<name>.sets/`` beside it. A publication writes a new set (every file fsynced),
then points the link at it with one ``rename`` (atomic on POSIX), then removes the sets older than
the previous one (a reader that opened a file of it keeps reading it). When a file cannot be
written (a full disk), the new set is removed, the link still points at the old set, and the
error says so. A real directory found where the link belongs (written by a release before this
one) is moved beside the sets, kept, and the move is logged; a symbolic link the sink did not make is
refused. One writer at a time (a lock file in the sets' directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from exchange.errors import ExchangeError, UsageError

__all__ = ["FileSink"]

log = logging.getLogger("exchange.sinks")


class FileSink:
    """Write feeds as one set of files reached at ``directory``: ``<directory>/<feed name>`` (and ``.gz``).

    With ``gzip=True`` a precompressed ``<name>.gz`` is written beside each feed (same mtime), for
    nginx ``gzip_static on``. Files get ``mode`` (default world-readable: the web server usually
    runs as another user); set directories are world-readable and searchable likewise.
    """

    def __init__(self, directory: Path | str, *, gzip: bool = False, mode: int = 0o644) -> None:
        self.directory = Path(directory)
        self.gzip = gzip
        self.mode = mode
        self.sets = self.directory.parent / f".{self.directory.name}.sets"

    def push(
        self, feeds: Mapping[str, bytes], *, gzipped: Mapping[str, bytes] | None = None,
        mtime_ms: int | Mapping[str, int] | None = None,
    ) -> bool:
        """Publish ``feeds`` (and, in ``gzipped``, their compressed bodies) as the new set, all or nothing.

        ``mtime_ms`` (the publication time, one for all or per feed) becomes the files' mtime, so the
        web server's ``Last-Modified`` is the publication time, not the write time. A sink with
        ``gzip=True`` needs the compressed body of every feed: it writes bytes, it does not render or
        compress. When the set in place holds these very files, nothing is written: a publish that
        changed nothing leaves the files, their mtimes and the web server's answers as they were.
        Returns whether a new set was written.
        """
        for name in feeds:
            _check_name(name)
            if self.gzip and (gzipped is None or name not in gzipped):
                raise UsageError(f"a gzip sink needs the compressed body of {name!r}")
        try:
            self.sets.mkdir(parents=True, exist_ok=True)
            lock = os.open(self.sets / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise ExchangeError(f"cannot write the feeds to {self.directory}: {exc.strerror or exc}") from exc
        try:
            # one writer at a time (the daemon's out_dir and a `publish --out` by hand): each removes
            # the sets older than the previous one, which must never be another writer's new set
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._push_locked(feeds, gzipped, mtime_ms)
        finally:
            os.close(lock)  # releases the lock

    def _push_locked(
        self, feeds: Mapping[str, bytes], gzipped: Mapping[str, bytes] | None, mtime_ms: int | Mapping[str, int] | None
    ) -> bool:
        try:
            self._check_link()
            self._adopt_legacy_directory()
            new = Path(tempfile.mkdtemp(dir=self.sets, prefix=time.strftime("set-%Y%m%dT%H%M%S-")))
        except OSError as exc:
            raise ExchangeError(f"cannot write the feeds to {self.directory}: {exc.strerror or exc}") from exc
        previous = self._current()
        if previous is not None and self._holds(previous, feeds, gzipped):
            new.rmdir()
            return False
        try:
            for name, body in feeds.items():
                when = mtime_ms.get(name) if isinstance(mtime_ms, Mapping) else mtime_ms
                if self.gzip and gzipped is not None:
                    self._write(new / (name + ".gz"), gzipped[name], when)
                self._write(new / name, body, when)
            new.chmod(0o755)
            _fsync_directory(new)
            self._point_at(new)
        except OSError as exc:
            shutil.rmtree(new, ignore_errors=True)
            raise ExchangeError(
                f"cannot write the feeds to {self.directory}: {exc.strerror or exc}; the previous set of files "
                "stays in place"
            ) from exc
        self._remove_old_sets(keep={new.name, previous.name if previous else ""})
        return True

    def _holds(self, current: Path, feeds: Mapping[str, bytes], gzipped: Mapping[str, bytes] | None) -> bool:
        """Whether the set ``current`` holds exactly these files, byte for byte."""
        wanted = dict(feeds)
        if self.gzip and gzipped is not None:
            wanted.update({name + ".gz": gzipped[name] for name in feeds})
        try:
            present = {entry.name for entry in current.iterdir()}
            return present == set(wanted) and all((current / name).read_bytes() == body
                                                   for name, body in wanted.items())
        except OSError:
            return False

    def _write(self, target: Path, data: bytes, mtime_ms: int | None) -> None:
        with target.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), self.mode)
            os.fsync(handle.fileno())
        if mtime_ms is not None:
            os.utime(target, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))

    def _current(self) -> Path | None:
        if self.directory.is_symlink():
            return self.directory.parent / self.directory.readlink()
        return None

    def _point_at(self, new: Path) -> None:
        """Swap the link to ``new`` in one rename; relative, so the tree can be moved or mounted elsewhere."""
        link = self.sets / f".link-{new.name}"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(new.relative_to(self.directory.parent))
        link.replace(self.directory)
        _fsync_directory(self.directory.parent)

    def _check_link(self) -> None:
        """A symbolic link this sink did not make (a city's own ``feeds -> site``) is not replaced."""
        if self.directory.is_symlink():
            target = self.directory.parent / self.directory.readlink()
            if target.parent.resolve() != self.sets.resolve():
                raise ExchangeError(
                    f"{self.directory} is a symbolic link to {target}, not one this sink made: point "
                    "publish.out_dir (or --out) at a path of its own"
                )

    def _adopt_legacy_directory(self) -> None:
        """A real directory where the link belongs (an earlier release's files) becomes a set that is
        kept, so nothing the city put there is deleted; it is said once."""
        if self.directory.is_dir() and not self.directory.is_symlink():
            adopted = self.sets / time.strftime("adopted-%Y%m%dT%H%M%S")
            self.directory.rename(adopted)
            log.warning("%s is now a link to each publication's set of files; what it held was moved to %s "
                        "(kept: move back what is not a feed)", self.directory, adopted)

    def _remove_old_sets(self, keep: set[str]) -> None:
        for entry in self.sets.iterdir():
            if entry.name not in keep and entry.name.startswith("set-"):
                shutil.rmtree(entry, ignore_errors=True)


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
