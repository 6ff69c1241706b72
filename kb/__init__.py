"""Knowledge base: indexes, hybrid retrieval, cited answers, and the service behind every interface."""

__version__ = "0.1.0"
