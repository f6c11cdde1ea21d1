"""A path with a trailing slash is a JSON 404 that names the right path, never a redirect.

Starlette would redirect `/healthz/` to `http://…/healthz`, ignoring the scheme a TLS proxy
terminated: a downgrade to plain HTTP, and POST clients do not follow it anyway.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("method", "path"), [("GET", "/healthz/"), ("GET", "/metrics/"), ("POST", "/v1/events/"),
                                          ("GET", "/v1/webhooks/")])
def test_a_trailing_slash_is_a_json_404_naming_the_path(app, method, path):
    with app.client() as client:
        response = client.request(method, path, headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 404
    assert "location" not in response.headers
    body = response.json()
    assert body["error"] == "not_found"
    assert f"no trailing slash: {path.rstrip('/')}" in body["message"]


def test_the_path_without_the_slash_answers(app):
    with app.client() as client:
        assert client.get("/healthz").status_code == 200
