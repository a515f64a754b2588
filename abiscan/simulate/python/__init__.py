"""Import-time code: the import graph, native imports and propagation."""
