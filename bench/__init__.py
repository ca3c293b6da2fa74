"""Benchmarks: run by hand from the checkout as ``python -m bench.NAME`` (see ``bench/README.md``).

They use the test kits of ``tests.support`` (the synthetic city), which are not installed, so they
run from the checkout only; they are not part of the installed packages either.
"""
