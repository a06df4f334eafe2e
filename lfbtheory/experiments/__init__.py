"""Experiments: frozen configs -> pure runs -> result files and plots (``lfb regret``, sweeps)."""
