"""REST API for webhooks under /v1/webhooks (stub: being written)."""

from starlette.routing import Route

routes: list[Route] = []
