"""Configuration layering and one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from tests.helpers import REPO
from trio_wrapper.config import ConfigError, load_config


def test_shipped_file_states_every_default() -> None:
    shipped = load_config(REPO / "conf" / "trio_wrapper.toml", environ={})
    assert msgspec.to_builtins(shipped) == msgspec.to_builtins(load_config(None, environ={}))


def test_shipped_file_names_every_key() -> None:
    with open(REPO / "conf" / "trio_wrapper.toml", "rb") as handle:
        written = tomllib.load(handle)
    defaults = msgspec.to_builtins(load_config(None, environ={}))
    for section, values in defaults.items():
        assert set(written[section]) == set(values), section


def test_layering_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9000\nhost = "::1"\n[limits]\nmax_agents = 5\n')
    config = load_config(
        path,
        environ={"TRIO_WRAPPER_LIMITS_MAX_AGENTS": "7", "TRIO_WRAPPER_SERVER_PORT": "9100"},
        overrides={"server": {"port": 9200}},
    )
    assert config.server.port == 9200  # flag beats env beats file
    assert config.limits.max_agents == 7
    assert config.server.host == "::1"
    assert config.agents.stop_grace_seconds == 10.0  # untouched default


def test_env_lists_are_comma_separated() -> None:
    config = load_config(
        None, environ={"TRIO_WRAPPER_CORS_ALLOW_ORIGINS": "http://a:1, http://b:2"}
    )
    assert config.cors.allow_origins == ["http://a:1", "http://b:2"]


def test_file_profiles_add_to_shipped_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[profiles.mine]\ncommand = ["my-cli", "{prompt}"]\nformat = "text"\n')
    config = load_config(path, environ={})
    assert set(config.profiles) == {"codex", "claude", "gemini", "aider", "mine"}


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("[server]\nport = 'x'\n", {}, "server.port"),
        ("[server]\nport = 70000\n", {}, "server.port"),
        ("[server]\nbogus = 1\n", {}, "bogus"),
        ("[nosuch]\na = 1\n", {}, "nosuch"),
        ("[limits]\nmax_agents = 0\n", {}, "limits.max_agents"),
        ("[agents]\ndefault_format = 'xml'\n", {}, "agents.default_format"),
        ("[profiles.x]\ncommand = []\n", {}, "profiles.x.command"),
        ("[cors]\nallow_origins = ['*']\nallow_credentials = true\n", {}, "cors.allow_origins"),
        ("[server]\nroot_path = 'api/'\n", {}, "server.root_path"),
        ("", {"TRIO_WRAPPER_LIMITS_MAX_AGENTS": "lots"}, "limits.max_agents"),
        ("[server]\nhost = '0.0.0.0'\n", {}, "auth.token"),
        ("not toml at all [", {}, "invalid TOML"),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, text: str, env: dict[str, str], needle: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_non_loopback_bind_allowed_with_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc\n")
    config = load_config(
        None,
        environ={
            "TRIO_WRAPPER_SERVER_HOST": "0.0.0.0",
            "TRIO_WRAPPER_AUTH_TOKEN_FILE": str(token_file),
        },
    )
    assert config.token == "abc"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml", environ={})
