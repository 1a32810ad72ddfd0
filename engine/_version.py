"""The version of engine, in one place (pyproject.toml holds the same string for the package)."""
__version__ = "0.1.0"
