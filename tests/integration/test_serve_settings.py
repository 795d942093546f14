"""Serving settings: defaults < TOML file < SHOPSEARCH_SERVE_* environment < --host/--port,
with errors that name the file (or variable) and the key."""

from __future__ import annotations

import pytest

from shopsearch.cli import main
from shopsearch.serve import ServeSettings, SettingsError


def test_defaults():
    settings = ServeSettings.load(None, env={})
    assert (settings.host, settings.port, settings.cors_origins) == ("127.0.0.1", 8080, ())
    assert (settings.max_query_chars, settings.max_k, settings.max_batch) == (512, 100, 1000)
    assert settings.max_body_bytes == 1_048_576 and settings.max_inline_events == 100
    assert settings.storefront_scopes == ("search", "events")


def test_toml_then_environment_then_flags(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text(
        'port = 9000\ncors_origins = ["https://a.example"]\nrate_limit = 5\nmax_k = 50\n'
        'log_level = "WARNING"\n'
    )
    settings = ServeSettings.load(path, env={"PATH": "/bin"})
    assert settings.port == 9000 and settings.cors_origins == ("https://a.example",)
    assert settings.rate_limit == 5.0 and settings.max_k == 50 and settings.log_level == "warning"
    env = {
        "SHOPSEARCH_SERVE_PORT": "9100",
        "SHOPSEARCH_SERVE_CORS_ORIGINS": "https://a.example, https://b.example",
        "SHOPSEARCH_SERVE_RATE_LIMIT": "2.5",
    }
    settings = ServeSettings.load(path, env=env)
    assert settings.port == 9100 and settings.rate_limit == 2.5 and settings.max_k == 50
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.with_overrides(host="0.0.0.0", port=None).host == "0.0.0.0"
    assert settings.with_overrides(host="0.0.0.0", port=None).port == 9100


def test_a_serve_table_is_accepted(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text("[serve]\nmax_batch = 10\n")
    assert ServeSettings.load(path, env={}).max_batch == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prot = 9000\n", "key 'prot': unknown setting 'prot'"),
        ('port = "high"\n', "key 'port': expected an integer"),
        ("cors_origins = 5\n", "key 'cors_origins': expected a list of strings"),
        ("port = 70000\n", "setting 'port': must be between 0 and 65535"),
        ("max_k = 0\n", "setting 'max_k': must be >= 1"),
        ('storefront_scopes = ["root"]\n', "setting 'storefront_scopes': unknown scope"),
        ("port = [\n", "invalid TOML"),
    ],
)
def test_file_errors_name_the_file_and_the_key(tmp_path, text, expected):
    path = tmp_path / "serve.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as caught:
        ServeSettings.load(path, env={})
    assert str(path) in str(caught.value) and expected in str(caught.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SHOPSEARCH_SERVE_PORT": "eighty"}, "SHOPSEARCH_SERVE_PORT: expected an integer"),
        ({"SHOPSEARCH_SERVE_COLOUR": "red"}, "SHOPSEARCH_SERVE_COLOUR: unknown setting 'colour'"),
        ({"SHOPSEARCH_SERVE_RATE_LIMIT": "-1"}, "setting 'rate_limit': must be a number > 0"),
    ],
)
def test_environment_errors_name_the_variable(env, expected):
    with pytest.raises(SettingsError, match=expected.replace("(", r"\(")):
        ServeSettings.load(None, env=env)


def test_a_missing_settings_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="no such settings file"):
        ServeSettings.load(tmp_path / "nope.toml", env={})


def test_serve_reports_bad_settings_before_starting(tmp_path, tiny_index_dir, capsys):
    path = tmp_path / "serve.toml"
    path.write_text("max_kk = 3\n")
    assert main(["serve", str(tiny_index_dir), "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "shopsearch serve: error:" in err and str(path) in err and "'max_kk'" in err


def test_workers_and_the_search_cap():
    settings = ServeSettings.load(None, env={})
    assert (settings.workers, settings.search_concurrency, settings.max_queued_searches) == (
        1,
        2,
        64,
    )
    env = {"SHOPSEARCH_SERVE_WORKERS": "2", "SHOPSEARCH_SERVE_MAX_QUEUED_SEARCHES": "0"}
    settings = ServeSettings.load(None, env=env)
    assert settings.workers == 2 and settings.max_queued_searches == 0
    assert settings.with_overrides(workers=3).workers == 3
    assert ServeSettings.from_json(settings.to_json()) == settings  # what workers receive
    with pytest.raises(SettingsError, match="'workers': must be >= 1"):
        ServeSettings(workers=0)
    with pytest.raises(SettingsError, match="'search_concurrency': must be >= 1"):
        ServeSettings(search_concurrency=0)
