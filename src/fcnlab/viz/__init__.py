"""Pictures: training-run plots (``fcnlab.viz.plots``) and lesson figures (``fcnlab.viz.lesson``)."""

from __future__ import annotations
