"""The `linkhub` command: one module per command group, over the same services the HTTP API uses."""
