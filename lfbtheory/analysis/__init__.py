"""Analysis of trajectories: the regret/violation ledger, growth classes, limit cycles, causality."""
