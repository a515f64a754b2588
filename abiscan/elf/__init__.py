"""ELF facts: the model abiscan reads binaries through."""
