"""The file sink publishes an all-or-nothing set (issue 17, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from adapters.sinks import FileSink
from exchange.errors import ExchangeError
from tests.support.helpers import Cli
from tests.support.paths import DEMO, ROOT


def _set(n: int, size: int = 1000) -> dict[str, bytes]:
    names = ("cifs.xml", "cifs.json", "wzdx.geojson")
    return {name: f"{name} publication {n} ".encode() * (size // 20) for name in names}


def _publication_of(directory: Path) -> set[int]:
    """Which publications the files reached through the link belong to (one, for a whole set)."""
    real = Path(os.path.realpath(directory))  # resolve once, as rsync or a reader of the set does
    return {int(path.read_bytes().split(b" publication ")[1].split(b" ")[0]) for path in real.iterdir()}


def test_a_failed_write_leaves_the_previous_set_whole(tmp_path: Path) -> None:
    """Finding: on a full disk `publish --out` left a new cifs.xml beside an old cifs.json and
    wzdx.geojson while the store had switched to the new publication. Here the second publication
    cannot be written (a file-size limit, EFBIG, in a child process): the first set stays, whole."""
    target = tmp_path / "feeds"
    FileSink(target).push(_set(1))
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from adapters.sinks import FileSink
from exchange.errors import ExchangeError
from tests.test_file_sink_sets import _set
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))
try:
    FileSink({str(target)!r}).push(_set(2, size=100_000))
except ExchangeError as exc:
    print(exc)
    sys.exit(1)
"""
    failed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1, failed.stderr
    assert "cannot write the feeds to" in failed.stdout and "the previous set of files stays in place" in failed.stdout
    assert _publication_of(target) == {1}
    assert sorted(p.name for p in target.iterdir()) == ["cifs.json", "cifs.xml", "wzdx.geojson"]
    assert len(list((tmp_path / ".feeds.sets").glob("set-*"))) == 1, "the partial set is removed"


def test_concurrent_writers_never_leave_the_link_dangling(tmp_path: Path) -> None:
    """Trial finding: four `publish --out DIR` at once deleted each other's new sets; DIR pointed at
    a removed set (or none was left) while every run exited 0."""
    target = tmp_path / "feeds"
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from adapters.sinks import FileSink
from tests.test_file_sink_sets import _set
for n in range(15):
    FileSink({str(target)!r}).push(_set(int(sys.argv[1]) * 100 + n))
"""
    writers = [subprocess.Popen([sys.executable, "-c", script, str(w)]) for w in range(4)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    assert len(_publication_of(target)) == 1 and (target / "cifs.xml").is_file()


def test_readers_see_one_publication_or_the_next(tmp_path: Path) -> None:
    target = tmp_path / "feeds"
    sink = FileSink(target)
    sink.push(_set(0))
    stop, mixed = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            try:
                seen = _publication_of(target)
            except (FileNotFoundError, IndexError):  # a set removed after the reader resolved it: read again
                continue
            if len(seen) != 1:
                mixed.append(seen)

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(1, 30):
        sink.push(_set(n))
    stop.set()
    reader.join()
    assert not mixed
    assert _publication_of(target) == {29}
    assert len(list((tmp_path / ".feeds.sets").glob("set-*"))) <= 2, "older sets are removed"


def test_an_earlier_release_directory_is_adopted_and_kept(tmp_path: Path) -> None:
    """Trial finding: a file the city kept in DIR (index.html) was deleted after two publications."""
    target = tmp_path / "feeds"
    target.mkdir()
    (target / "cifs.xml").write_bytes(b"old")
    (target / "index.html").write_bytes(b"mine")
    for n in (1, 2, 3):
        FileSink(target).push(_set(n))
    assert target.is_symlink() and _publication_of(target) == {3}
    kept = [p for p in (tmp_path / ".feeds.sets").iterdir() if p.name.startswith("adopted-")]
    assert len(kept) == 1 and (kept[0] / "index.html").read_bytes() == b"mine"
    # a link the city made itself is not replaced
    (tmp_path / "site").mkdir()
    (tmp_path / "www").symlink_to(tmp_path / "site")
    with pytest.raises(ExchangeError, match=r"is a symbolic link to .*site, not one this sink made"):
        FileSink(tmp_path / "www").push(_set(1))
    assert (tmp_path / "www").resolve() == (tmp_path / "site").resolve()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ExchangeError, match=r"^cannot write the feeds to .*a-file/x: Not a directory$"):
        FileSink(tmp_path / "a-file" / "x").push(_set(1))


def test_the_same_feeds_again_leave_the_set_and_its_times_alone(tmp_path: Path) -> None:
    """Finding: each publish-clock tick that changed nothing wrote a new set of identical files, with
    the write time as mtime: nginx's Last-Modified moved every minute and partners polling with
    If-Modified-Since got the whole feed again. Files carry their feed's publication time."""
    target, sets = tmp_path / "feeds", tmp_path / ".feeds.sets"
    published = {name: 1_700_000_000_000 + k * 1000 for k, name in enumerate(_set(1))}
    FileSink(target).push(_set(1), mtime_ms=published)
    first = os.path.realpath(target)
    assert {p.name: p.stat().st_mtime_ns // 1_000_000 for p in target.iterdir()} == published

    FileSink(target).push(_set(1), mtime_ms=1_800_000_000_000)
    assert os.path.realpath(target) == first and len(list(sets.glob("set-*"))) == 1
    assert {p.name: p.stat().st_mtime_ns // 1_000_000 for p in target.iterdir()} == published

    FileSink(target).push(_set(2))
    assert os.path.realpath(target) != first and _publication_of(target) == {2}


def test_publish_out_again_says_the_files_were_left_as_they_are(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "feeds"
    first = cli("--config", str(DEMO), "publish", "--out", str(out))
    assert first.code == 0 and f"wrote {out / 'cifs.xml'}" in first.err, first
    times = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    again = cli("--config", str(DEMO), "publish", "--out", str(out))
    assert again.code == 0 and f"{out} already holds these feeds: left as it is" in again.err, again
    assert "wrote" not in again.err
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == times


def test_a_directory_the_feeds_cannot_be_written_to_is_told_to_monitoring_and_config_check(
    cli: Cli, tmp_path: Path,
) -> None:
    """Found in a cold trial: with `publish.out_dir` unwritable the log said so, but `/health/sources` was
    200 and `config check` passed: a city serving the files from nginx served stale feeds, monitoring green.
    (Run as root here, so "unwritable" is a path under a file: the same refusal.)"""
    from exchange.config_check import check_out_dir
    from exchange.runtime import degraded

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert check_out_dir(blocker / "feeds").status == "failed"
    assert check_out_dir(tmp_path / "new" / "feeds").status == "ok"
    failed = cli("--config", str(DEMO), "publish", "--out", str(blocker / "feeds"))
    assert failed.code == 1 and "cannot write the feeds to" in failed.err, failed
    assert "cannot write the feeds to" in degraded().get("out_dir", ""), degraded()
    written = cli("--config", str(DEMO), "publish", "--out", str(tmp_path / "feeds"))
    assert written.code == 0 and "out_dir" not in degraded(), written
