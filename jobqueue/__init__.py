"""jobqueue core: store, fetcher and workers, with no web code."""

__version__ = "0.3.0"
