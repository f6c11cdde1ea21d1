"""linkhub: self-hosted email link tracker and event-webhook hub."""

__version__ = "0.1.0"
