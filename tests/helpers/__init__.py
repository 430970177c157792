"""Shared test helpers: fixtures written in the real on-disk formats, tiny models and configs,
two-process runs. Imported as ``helpers.<module>`` (``tests/`` is on ``sys.path``, see
``conftest.py``)."""
