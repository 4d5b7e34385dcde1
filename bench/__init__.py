"""Reproducible load benchmarks for Hearth on one machine over loopback (see bench/README.md)."""
