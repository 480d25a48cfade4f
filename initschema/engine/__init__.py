"""From a model and its rules to written weights: compile (rules in MMEngine's order,
each emitted as checked actions) → plan → execute → report."""
