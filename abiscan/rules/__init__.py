"""Finding rules: small functions from facts and simulation results to findings.

One module per code range: ``imports`` holds ABI1xx, ``binaries`` ABI2xx.
"""
