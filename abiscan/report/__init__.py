"""Findings, the report and its renderers."""
