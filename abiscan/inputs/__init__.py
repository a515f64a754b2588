"""Inputs as read-only trees, the stack at the target's paths, dist-info and per-member facts."""
