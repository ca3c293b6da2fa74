"""Kits for the tests and the benchmarks, kept out of the installed packages.

* ``tests.support.synthetic``: a seeded synthetic city with ground truth, and the scores of a
  matcher or a clusterer against it (``tests/geo``, ``bench/geo_bench.py``, ``bench/publish_bench.py``).
* ``tests.support.fixturegen``: the seeded generator of the demo fixtures in ``fixtures/waze`` and
  ``fixtures/city`` (``python -m tests.support.fixturegen`` from the checkout).

The installed packages (``exchange``, ``adapters``, ``feeds``, ``geo``) never import them.
"""
