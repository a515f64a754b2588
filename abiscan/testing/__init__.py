"""Test support: writers of synthetic inputs (not part of the scanning API)."""
