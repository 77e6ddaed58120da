"""The package version, in a module of its own so every stage can read it without importing the package's
`__init__` (which re-exports the stages)."""

__version__ = "0.1.0"
