"""Outbound HTTP: the delivery loop draining the outbox, the sender, verify calls and retention."""
