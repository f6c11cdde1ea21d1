"""HTTP: the ASGI app, its server, and one module per resource (redirect, outreach, events, webhooks)."""
