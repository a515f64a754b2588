"""Predictions: simulation results judged by the rules, per found file."""
