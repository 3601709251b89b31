"""Stages, the lazy layer runner with time budgets and fail modes, and the policy evaluation."""
