"""The target's own machinery, simulated: import system, dynamic linker, import-time code."""
