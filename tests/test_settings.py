"""The settings registry is the one description of the server's configuration: `linkhub serve`'s
options resolve to the Settings defaults, and the environment alone is read the way serve reads it."""

from __future__ import annotations

import click
import pytest

from linkhub.cli.common import environ_settings
from linkhub.cli.main import serve
from linkhub.settings import REGISTRY, Settings


@pytest.fixture(autouse=True)
def no_linkhub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in REGISTRY:
        monkeypatch.delenv(setting.env, raising=False)


def test_serve_without_flags_runs_on_the_settings_defaults() -> None:
    params = dict(serve.make_context("serve", []).params)
    assert (params.pop("log_level"), params.pop("log_format")) == ("info", "text")
    assert Settings(**params) == Settings()


def test_the_flag_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKHUB_PORT", "9000")
    monkeypatch.setenv("LINKHUB_TRUSTED_PROXIES", "10.0.0.0/8")
    params = serve.make_context("serve", ["--port", "9001"]).params
    assert params["port"] == 9001
    assert [str(network) for network in params["trusted_proxies"]] == ["10.0.0.0/8"]


def test_environ_settings_reads_only_the_named_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKHUB_HOST", "::1")
    monkeypatch.setenv("LINKHUB_PORT", "9000")
    monkeypatch.setenv("LINKHUB_PUBLIC_URL", "https://links.example.org/")
    monkeypatch.setenv("LINKHUB_KEEP_DELIVERIES_DAYS", "not read")
    settings = environ_settings("host", "port")
    assert settings == Settings(host="::1", port=9000)
    assert settings.base_url == "http://[::1]:9000"
    assert environ_settings("public_url").base_url == "https://links.example.org"


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("LINKHUB_PORT", "x", "LINKHUB_PORT: 'x' is not a valid integer"),
    ("LINKHUB_PORT", "99999", "LINKHUB_PORT: 99999 is not in the range"),
    ("LINKHUB_PUBLIC_URL", "ftp://example.com", "LINKHUB_PUBLIC_URL: public URL must be an absolute http(s) URL"),
])
def test_environ_settings_names_the_variable_it_refuses(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                        says: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(click.ClickException) as refused:
        environ_settings("host", "port", "public_url")
    assert refused.value.message.startswith(says) and refused.value.exit_code == 1
