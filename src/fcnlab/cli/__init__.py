"""The ``fcnlab`` command line: only this package knows about argv."""
