"""The target's dynamic linker: identity checks and dlopen."""
