"""Experiments: frozen configs -> pure runs -> result files and plots (``lfb regret``, sweeps).

:func:`load_results` / :func:`load_curves` read any results folder into pandas / xarray."""

from lfbtheory.experiments.results import load_curves, load_results

__all__ = ["load_results", "load_curves"]
