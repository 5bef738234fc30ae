"""claim-scrubber: event-driven scrubbing of professional claim lines."""

__version__ = "0.1.0"
