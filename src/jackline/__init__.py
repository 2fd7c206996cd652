"""Jackline: a production harness for coding agents."""

__version__ = "0.1.0"
