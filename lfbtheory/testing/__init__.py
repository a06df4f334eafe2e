"""Public test helpers: Hypothesis strategies for routing instances (and, later, conformance)."""
