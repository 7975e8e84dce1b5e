"""Benchmarks: each module has main() that measures a target against a reference in the same run and prints ratios."""
