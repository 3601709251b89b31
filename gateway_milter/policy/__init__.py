"""The policy: a validated, compiled, immutable snapshot of the whole configuration, and the
evaluation that turns layer findings into an outcome."""
