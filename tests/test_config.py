"""Options come from flags and JOBQUEUE_* variables; a flag beats the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobqueue import __version__
from jobqueue.config import ConfigError, Settings, load_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOKEN = "config-token-0123456789"


def test_defaults_match_the_contract():
    settings = load_settings([], environ={})
    assert (settings.host, settings.port, settings.database) == ("127.0.0.1", 5000, "sqlite:///jobqueue.db")
    assert settings.workers == 64 and not settings.allow_private_addresses and settings.api_tokens == ()
    assert settings == Settings()


def test_environment_variables_are_read():
    env = {"JOBQUEUE_HOST": "0.0.0.0", "JOBQUEUE_PORT": "8080", "JOBQUEUE_DATABASE": "sqlite:////tmp/x.db",
           "JOBQUEUE_WORKERS": "7", "JOBQUEUE_ALLOW_PRIVATE_ADDRESSES": "1", "JOBQUEUE_API_TOKEN": TOKEN,
           "JOBQUEUE_LOG_FORMAT": "json", "JOBQUEUE_ALLOW_NETWORK": "10.1.0.0/16,192.168.5.0/24"}
    settings = load_settings([], environ=env)
    assert settings.host == "0.0.0.0" and settings.port == 8080 and settings.database == "sqlite:////tmp/x.db"
    assert settings.workers == 7 and settings.allow_private_addresses and settings.api_tokens == (TOKEN,)
    assert settings.log_format == "json" and settings.allow_networks == ("10.1.0.0/16", "192.168.5.0/24")


def test_a_flag_beats_the_variable():
    env = {"JOBQUEUE_PORT": "8080", "JOBQUEUE_WORKERS": "7", "JOBQUEUE_API_TOKEN": TOKEN}
    settings = load_settings(["--port", "9090", "--workers", "3", "--api-token", TOKEN + "x"], environ=env)
    assert settings.port == 9090 and settings.workers == 3 and settings.api_tokens == (TOKEN + "x",)


def test_token_file_adds_tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# team tokens\n{TOKEN}\n\n{TOKEN}-two\n")
    settings = load_settings(["--api-token-file", str(path)], environ={})
    assert settings.api_tokens == (TOKEN, f"{TOKEN}-two")


@pytest.mark.parametrize("env,message", [
    ({"JOBQUEUE_PORT": "eighty"}, "JOBQUEUE_PORT='eighty' is not a valid int"),
    ({"JOBQUEUE_DATABASE": "redis://x"}, "unknown scheme"),
    ({"JOBQUEUE_API_TOKEN": "short"}, "at least 16 characters"),
])
def test_bad_variables_say_which(env, message):
    with pytest.raises(ConfigError) as info:
        load_settings([], environ=env)
    assert message in str(info.value)


@pytest.mark.parametrize("argv,message", [
    (["--port=abc"], "--port: 'abc' is not a whole number"),
    (["--workers", "many"], "--workers: 'many' is not a whole number"),
    (["--fetch-timeout=soon"], "--fetch-timeout: 'soon' is not a number"),
    (["--port"], "--port needs a value"),
    (["--no-such-flag"], "not an option of server.py: --no-such-flag; `server.py --help` lists the options"),
])
def test_bad_flags_are_one_sentence_without_usage(argv, message):
    with pytest.raises(ConfigError) as info:
        load_settings(argv, environ={})
    assert str(info.value) == message


def test_version_and_help_still_exit_zero(capsys):
    for flag in ("--version", "--help"):
        with pytest.raises(SystemExit) as info:
            load_settings([flag], environ={})
        assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"jobqueue {__version__}\n" in out and "usage: server.py" in out


def test_server_py_prints_the_sentence_and_its_version():
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, os.path.join(ROOT, "server.py"), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    bad = run("--port=abc")
    assert (bad.returncode, bad.stdout, bad.stderr) == (2, "", "jobqueue: --port: 'abc' is not a whole number\n")
    version = run("--version")
    assert (version.returncode, version.stdout, version.stderr) == (0, f"jobqueue {__version__}\n", "")
