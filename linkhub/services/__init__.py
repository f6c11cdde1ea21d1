"""Use cases: one function each, called by the HTTP handlers and the CLI alike."""
