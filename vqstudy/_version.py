"""The package version, in a module of its own so that low layers can record it without a cycle."""
__version__ = "0.1.0"
