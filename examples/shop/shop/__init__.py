"""Shop: a tiny order-taking web service (standard library only)."""

__version__ = "0.1.0"
