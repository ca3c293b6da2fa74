"""Benchmarks: run by hand from the checkout as ``python -m bench.NAME`` (see ``bench/README.md``)."""
