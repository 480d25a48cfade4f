"""From a model and its rules to written weights: walk → emit → compile → plan →
execute → report."""
