"""Fuzz every reader of outside data: the property tests of ``tests/test_readers_property.py``, long
and at random (not derandomized), for the Waze feed, CIFS, WZDx, the city's CSV and GeoJSON and the
config loader.

    .venv/bin/python -m bench.fuzz_readers                  # 5,000 examples per property
    .venv/bin/python -m bench.fuzz_readers --examples 50000

A failure prints hypothesis' shrunk example (the payload that broke a reader) and exits 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="examples per property (default 5000)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_readers_property.py"],
        cwd=ROOT, env={**os.environ, "EXCHANGE_FUZZ_EXAMPLES": str(args.examples)}, check=False,
    )
    print(f"{args.examples} examples per property, {time.monotonic() - started:.0f} s: "
          f"{'no reader broke' if result.returncode == 0 else 'a reader broke (see above)'}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
