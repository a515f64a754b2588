"""The target's import system: which file ``import x`` picks."""
