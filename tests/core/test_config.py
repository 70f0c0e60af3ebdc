"""Configuration layering and one-line errors."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import msgspec
import pytest

from tests.helpers import REPO
from trio_wrapper.cli import main
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


def test_logging_from_file_env_and_any_case_level(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[logging]\nformat = "json"\nlevel = "WARNING"\n')
    assert load_config(path, environ={}).logging.format == "json"
    config = load_config(path, environ={"TRIO_WRAPPER_LOGGING_FORMAT": "text"})
    assert (config.logging.format, config.logging.level) == ("text", "WARNING")


def test_env_lists_are_comma_separated() -> None:
    config = load_config(
        None, environ={"TRIO_WRAPPER_CORS_ALLOW_ORIGINS": "http://a:1, http://b:2"}
    )
    assert config.cors.allow_origins == ["http://a:1", "http://b:2"]


def test_file_profiles_add_to_shipped_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[profiles.mine]\ncommand = ["my-cli", "{prompt}"]\nformat = "text"\n')
    config = load_config(path, environ={})
    shipped = {"codex", "claude", "gemini", "aider", "claude-chat"}
    tuis = {"claude-tui", "codex-tui", "gemini-tui", "aider-tui"}
    assert set(config.profiles) == shipped | tuis | {"mine"}


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
        ("[auth]\ntoken = '   '\n", {}, "auth.token: the token is empty"),
        ("[auth]\ntoken = 'two words'\n", {}, "auth.token: the token must be printable"),
        ('[auth]\ntoken = "tab\\tin"\n', {}, "auth.token: the token must be printable"),
        ("[auth]\ntoken = 'caf\u00e9'\n", {}, "auth.token: the token must be printable"),
        ("", {"TRIO_WRAPPER_AUTH_TOKEN": ""}, "TRIO_WRAPPER_AUTH_TOKEN: is set but empty"),
        ("", {"TRIO_WRAPPER_AUTH_TOKEN": " \t "}, "TRIO_WRAPPER_AUTH_TOKEN: is set but empty"),
        ("[limits]\nmax_json_depth = 0\n", {}, "limits.max_json_depth"),
        ("[limits]\nmax_header_bytes = 100\n", {}, "limits.max_header_bytes"),
        ("[limits]\nmax_name_length = 201\n", {}, "limits.max_name_length"),
        ("[limits]\nmax_records = 0\n", {}, "limits.max_records"),
        ("[limits]\nmax_tail_lines = -1\n", {}, "limits.max_tail_lines"),
        ("[logging]\nformat = 'xml'\n", {}, "logging.format"),
        ("", {"TRIO_WRAPPER_LOGGING_LEVEL": "loud"}, "logging.level"),
        ("[logging]\nlimit_interval_seconds = -1\n", {}, "logging.limit_interval_seconds"),
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


@pytest.mark.parametrize("content", ["", "\n", "   \n", "\n\nsecret\n", " \t"])
def test_an_empty_token_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    """It used to read as "no token": authentication silently off."""
    token_file = tmp_path / "token"
    token_file.write_text(content)
    with pytest.raises(ConfigError, match=r"auth.token_file: the token is empty"):
        load_config(None, environ={"TRIO_WRAPPER_AUTH_TOKEN_FILE": str(token_file)})


def test_the_token_file_gives_its_first_line(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  abc  \nsecond line\n")
    config = load_config(None, environ={"TRIO_WRAPPER_AUTH_TOKEN_FILE": str(token_file)})
    assert config.token == "abc"


def test_an_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.token_file: cannot read"):
        load_config(None, environ={"TRIO_WRAPPER_AUTH_TOKEN_FILE": str(tmp_path / "nope")})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"auth\.token_file: cannot read"):
        load_config(None, environ={"TRIO_WRAPPER_AUTH_TOKEN_FILE": str(binary)})


def test_an_empty_token_in_the_file_means_no_token() -> None:
    # The shipped file says token = "": that is "not set", not an empty token.
    assert load_config(None, environ={}, overrides={"auth": {"token": ""}}).token == ""


@pytest.mark.parametrize("kind", ["env", "file", "config"])
def test_serve_refuses_an_empty_token_in_one_line(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator meant to set a token: exit 2 with one line, nothing served."""
    monkeypatch.chdir(tmp_path)  # no conf/ here: defaults, plus what is set below
    for name in [n for n in os.environ if n.startswith("TRIO_WRAPPER_")]:
        monkeypatch.delenv(name)
    args = ["serve", "--port", "0", "--logs-dir", str(tmp_path / "logs")]
    if kind == "env":
        monkeypatch.setenv("TRIO_WRAPPER_AUTH_TOKEN", " ")
    elif kind == "file":
        (tmp_path / "token").write_text("\n")
        monkeypatch.setenv("TRIO_WRAPPER_AUTH_TOKEN_FILE", str(tmp_path / "token"))
    else:
        (tmp_path / "c.toml").write_text('[auth]\ntoken = "\\t"\n')
        args += ["--config", str(tmp_path / "c.toml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("trio-wrapper: config error: ")
    assert "empty" in err
    assert not (tmp_path / "logs").exists()
