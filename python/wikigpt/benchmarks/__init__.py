"""Benchmarks that ship with the package (`wikigpt bench ...`). Each module exposes `main(argv=None) -> int`."""
