"""What the test suites (and ``bench/serving_bench.py``) share, in plain functions and classes:

- :mod:`.data`: the demo dataset, the public datasets in ``../shared`` (skipped with a reason
  when absent), CSV helpers;
- :mod:`.models`: a real SavedModel with the pipeline's signatures, trained in seconds;
- :mod:`.server`: ``textops serve`` in a subprocess on free ports, model repositories.

The fixtures built on them live in ``tests/conftest.py``, once for every suite.
"""
