"""The target runtime: profiles, built-in data and capture from a real interpreter."""
