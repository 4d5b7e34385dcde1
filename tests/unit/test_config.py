"""config.load(): defaults, durations, one clear error per bad variable, secrets in production."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import config
from config import ConfigError
from tests.conftest import p256_pem

# A PEM shape is all config checks; the OAuth code parses the key itself.
PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
SECRET = "s" * 40


def load(tmp_path: Path, **environ: str) -> dict[str, Any]:
    """Load settings from exactly `environ`, with the instance folder in tmp_path."""
    return config.load({"HEARTH_INSTANCE_DIR": str(tmp_path / "instance"), **environ})


def run_python(script: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -c script` from the project root with exactly `environ`."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def error_for(tmp_path: Path, **environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **environ)
    return caught.value


def test_defaults_describe_a_local_development_setup(tmp_path: Path) -> None:
    settings = load(tmp_path)

    instance = tmp_path / "instance"
    assert settings["HEARTH_ENV"] == "development"
    assert settings["INSTANCE_DIR"] == str(instance)
    assert settings["DATABASE_URL"] == f"sqlite:///{instance / 'hearth.db'}"
    assert settings["PUBLIC_API_ADDRESS"] == "http://localhost:8000"
    assert settings["PUBLIC_WEB_ADDRESS"] == "http://localhost:3000"
    assert settings["API_INTERNAL_ADDRESS"] == "http://localhost:8000"
    assert (
        settings["OAUTH_AUTHORISATION_CODE_CONSENT_URL"]
        == "http://localhost:3000/oauth/authorize/consent"
    )
    assert settings["OAUTH_AUTHORISATION_LOGIN_URL"] == "http://localhost:3000/login"
    assert settings["OAUTH_ACCESS_TOKEN_TTL"] == timedelta(minutes=15)
    assert settings["OAUTH_REFRESH_TOKEN_TTL"] == timedelta(hours=720)
    assert settings["OAUTH_REFRESH_TOKEN_MAX_AGE"] == timedelta(hours=2160)
    assert settings["OAUTH_PENDING_REQUEST_TTL"] == timedelta(minutes=10)
    assert settings["OAUTH_CODE_TTL"] == timedelta(seconds=60)
    assert settings["OAUTH_DYNAMIC_REGISTRATION_ENABLED"] is False
    assert settings["OAUTH_ACCESS_TOKEN_ALG"] == "ES256"
    assert settings["SESSION_COOKIE_SECURE"] is False
    assert settings["SESSION_COOKIE_DOMAIN"] is None
    assert settings["RATELIMIT_ENABLED"] is True
    assert settings["RATELIMIT_STORAGE_URI"] == "memory://"
    assert settings["LOG_LEVEL"] == "INFO"


def test_addresses_drop_a_trailing_slash_and_derive_the_frontend_urls(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        PUBLIC_API_ADDRESS="https://api.example.org/",
        PUBLIC_WEB_ADDRESS="https://forum.example.org/",
    )

    assert settings["PUBLIC_API_ADDRESS"] == "https://api.example.org"
    assert settings["API_INTERNAL_ADDRESS"] == "https://api.example.org"
    assert (
        settings["OAUTH_AUTHORISATION_CODE_CONSENT_URL"]
        == "https://forum.example.org/oauth/authorize/consent"
    )
    assert settings["OAUTH_AUTHORISATION_LOGIN_URL"] == "https://forum.example.org/login"


def test_consent_url_may_keep_its_own_query(tmp_path: Path) -> None:
    url = "https://forum.example.org/consent?theme=dark"
    settings = load(tmp_path, OAUTH_AUTHORISATION_CODE_CONSENT_URL=url)

    assert settings["OAUTH_AUTHORISATION_CODE_CONSENT_URL"] == url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("720h", timedelta(hours=720)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("1m30s500ms", timedelta(seconds=90.5)),
    ],
)
def test_durations_are_go_style(tmp_path: Path, text: str, expected: timedelta) -> None:
    assert load(tmp_path, OAUTH_ACCESS_TOKEN_TTL=text)["OAUTH_ACCESS_TOKEN_TTL"] == expected


@pytest.mark.parametrize("text", ["15", "15 minutes", "m15", "1h 30m", "-5m", "0s", "1d"])
def test_malformed_duration_names_the_variable(tmp_path: Path, text: str) -> None:
    error = error_for(tmp_path, OAUTH_CODE_TTL=text)

    assert error.variable == "OAUTH_CODE_TTL"
    assert str(error).startswith("configuration error: OAUTH_CODE_TTL: ")


@pytest.mark.parametrize(
    "url", ["mysql://user@db/hearth", "hearth.db", "postgres//db", "http://localhost:5432/x"]
)
def test_bad_database_url_names_the_variable(tmp_path: Path, url: str) -> None:
    error = error_for(tmp_path, DATABASE_URL=url)

    assert error.variable == "DATABASE_URL"
    assert str(error).startswith("configuration error: DATABASE_URL: ")


def test_plain_postgresql_url_uses_psycopg(tmp_path: Path) -> None:
    settings = load(tmp_path, DATABASE_URL="postgresql://hearth@db:5432/hearth")

    assert settings["DATABASE_URL"] == "postgresql+psycopg://hearth@db:5432/hearth"


@pytest.mark.parametrize(
    "address",
    ["localhost:8000", "ftp://localhost", "http://", "http://localhost:8000/?x=1", "http://h/#f"],
)
def test_bad_public_api_address_names_the_variable(tmp_path: Path, address: str) -> None:
    error = error_for(tmp_path, PUBLIC_API_ADDRESS=address)

    assert error.variable == "PUBLIC_API_ADDRESS"
    assert str(error).startswith("configuration error: PUBLIC_API_ADDRESS: ")


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("1", True), ("off", False)])
def test_booleans_accept_the_usual_spellings(tmp_path: Path, text: str, expected: bool) -> None:
    settings = load(tmp_path, OAUTH_DYNAMIC_REGISTRATION_ENABLED=text)

    assert settings["OAUTH_DYNAMIC_REGISTRATION_ENABLED"] is expected


def test_bad_boolean_names_the_variable(tmp_path: Path) -> None:
    error = error_for(tmp_path, RATELIMIT_ENABLED="maybe")

    assert error.variable == "RATELIMIT_ENABLED"
    assert (
        str(error) == "configuration error: RATELIMIT_ENABLED: expected true or false, got 'maybe'"
    )


def test_production_requires_secret_key(tmp_path: Path) -> None:
    error = error_for(tmp_path, HEARTH_ENV="production", OAUTH_SIGNING_KEY=PEM)

    assert error.variable == "SECRET_KEY"
    assert "SECRET_KEY" in str(error)


def test_production_requires_oauth_signing_key(tmp_path: Path) -> None:
    error = error_for(tmp_path, HEARTH_ENV="production", SECRET_KEY=SECRET)

    assert error.variable == "OAUTH_SIGNING_KEY"
    assert "OAUTH_SIGNING_KEY" in str(error)


def test_production_refuses_a_secret_generated_in_development(tmp_path: Path) -> None:
    load(tmp_path)
    assert (tmp_path / "instance" / "secret_key").exists()

    error = error_for(tmp_path, HEARTH_ENV="production", OAUTH_SIGNING_KEY=PEM)

    assert error.variable == "SECRET_KEY"


def test_production_starts_with_both_keys(tmp_path: Path) -> None:
    settings = load(tmp_path, HEARTH_ENV="production", SECRET_KEY=SECRET, OAUTH_SIGNING_KEY=PEM)

    assert settings["SECRET_KEY"] == SECRET
    assert settings["OAUTH_SIGNING_KEY"] == PEM.strip()
    assert not (tmp_path / "instance").exists()


def test_short_secret_key_is_refused(tmp_path: Path) -> None:
    assert error_for(tmp_path, SECRET_KEY="too-short").variable == "SECRET_KEY"


def test_signing_key_must_be_pem(tmp_path: Path) -> None:
    assert error_for(tmp_path, OAUTH_SIGNING_KEY="not a key").variable == "OAUTH_SIGNING_KEY"


def test_unknown_hearth_env_is_refused(tmp_path: Path) -> None:
    assert error_for(tmp_path, HEARTH_ENV="staging").variable == "HEARTH_ENV"


def test_development_generates_secret_key_once_and_reuses_it(tmp_path: Path) -> None:
    first = load(tmp_path)["SECRET_KEY"]
    second = load(tmp_path)["SECRET_KEY"]

    key_file = tmp_path / "instance" / "secret_key"
    assert len(first) >= 32
    assert second == first
    assert key_file.read_text() == first
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_development_secret_keys_differ_between_instances(tmp_path: Path) -> None:
    one = config.load({"HEARTH_INSTANCE_DIR": str(tmp_path / "one")})["SECRET_KEY"]
    two = config.load({"HEARTH_INSTANCE_DIR": str(tmp_path / "two")})["SECRET_KEY"]

    assert one != two


@pytest.mark.parametrize(
    ("address", "secure"), [("https://api.example.org", True), ("http://localhost:8000", False)]
)
def test_session_cookie_secure_follows_the_api_scheme(
    tmp_path: Path, address: str, secure: bool
) -> None:
    settings = load(tmp_path, PUBLIC_API_ADDRESS=address)

    assert settings["SESSION_COOKIE_SECURE"] is secure


def test_session_cookie_secure_can_be_overridden(tmp_path: Path) -> None:
    settings = load(
        tmp_path, PUBLIC_API_ADDRESS="https://api.example.org", SESSION_COOKIE_SECURE="0"
    )

    assert settings["SESSION_COOKIE_SECURE"] is False


def test_bad_ratelimit_storage_names_the_variable(tmp_path: Path) -> None:
    error = error_for(tmp_path, RATELIMIT_STORAGE_URI="memcached://cache:11211")

    assert error.variable == "RATELIMIT_STORAGE_URI"


def test_log_level_is_upper_cased(tmp_path: Path) -> None:
    assert load(tmp_path, LOG_LEVEL="debug")["LOG_LEVEL"] == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OAUTH_ACCESS_TOKEN_TTL", "15 minutes"),
        ("DATABASE_URL", "mysql://db/hearth"),
        ("PUBLIC_API_ADDRESS", "localhost:8000"),
        ("RATELIMIT_ENABLED", "maybe"),
    ],
)
def test_hearth_cli_prints_one_line_and_exits_2_on_a_bad_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    hearth = Path(sys.executable).with_name("hearth")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "HEARTH_INSTANCE_DIR": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hearth.db'}",
        variable: value,
    }

    result = subprocess.run(
        [str(hearth), "db", "upgrade"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {variable}: ")
    assert not (tmp_path / "hearth.db").exists()


def test_trusted_proxy_count_must_be_a_small_whole_number() -> None:
    import config

    assert (
        config.load({"TRUSTED_PROXY_COUNT": "2", "SECRET_KEY": "x" * 32})["TRUSTED_PROXY_COUNT"]
        == 2
    )
    for bad in ("-1", "two", "99"):
        try:
            config.load({"TRUSTED_PROXY_COUNT": bad, "SECRET_KEY": "x" * 32})
        except config.ConfigError as error:
            assert str(error).startswith("configuration error: TRUSTED_PROXY_COUNT:")
        else:
            raise AssertionError(bad)


def test_frontend_in_production_does_not_need_the_signing_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import config

    environ = {
        "HEARTH_ENV": "production",
        "SECRET_KEY": "x" * 40,
        "HEARTH_INSTANCE_DIR": str(tmp_path),
    }
    assert config.load(environ, signs_tokens=False)["OAUTH_SIGNING_KEY"] is None
    try:
        config.load(environ)
    except config.ConfigError as error:
        assert error.variable == "OAUTH_SIGNING_KEY"
    else:
        raise AssertionError("the API must require OAUTH_SIGNING_KEY in production")


def test_access_token_alg_is_es256_or_rs256(tmp_path: Path) -> None:
    assert load(tmp_path, OAUTH_ACCESS_TOKEN_ALG="RS256")["OAUTH_ACCESS_TOKEN_ALG"] == "RS256"
    error = error_for(tmp_path, OAUTH_ACCESS_TOKEN_ALG="HS256")

    assert error.variable == "OAUTH_ACCESS_TOKEN_ALG"
    assert str(error) == (
        "configuration error: OAUTH_ACCESS_TOKEN_ALG: expected ES256 or RS256, got 'HS256'"
    )


def test_rs256_access_tokens_need_an_rsa_signing_key(tmp_path: Path) -> None:
    ec_pem = p256_pem()
    error = error_for(tmp_path, OAUTH_SIGNING_KEY=ec_pem, OAUTH_ACCESS_TOKEN_ALG="RS256")

    assert error.variable == "OAUTH_ACCESS_TOKEN_ALG"
    assert "RS256 needs an RSA OAUTH_SIGNING_KEY" in str(error)
    assert load(tmp_path, OAUTH_SIGNING_KEY=ec_pem)["OAUTH_ACCESS_TOKEN_ALG"] == "ES256"


def test_api_refuses_to_start_with_a_signing_key_it_cannot_read(tmp_path: Path) -> None:
    """The key is parsed when `gunicorn wsgi:api` builds the app, not on the first token."""
    environ = {
        "PATH": os.environ["PATH"],
        "HEARTH_ENV": "production",
        "SECRET_KEY": SECRET,
        "OAUTH_SIGNING_KEY": PEM,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hearth.db'}",
        "HEARTH_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    result = run_python("import wsgi; wsgi.api", environ)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("OAUTH_SIGNING_KEY: ")
