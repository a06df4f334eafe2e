"""Analysis of trajectories: regret/violation ledger, growth classes, limit cycles, causality."""
