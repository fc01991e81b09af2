"""secretd: resolve secrets from providers and mount them as in-memory files."""

__version__ = "0.1.0"

__all__ = ["__version__"]
