"""No user mistake ends in a traceback: every subcommand, fed wrong arguments and bad input.

Each case is a mistake a person can make: a missing or wrong argument, a file that does not
exist, is a directory, is binary, empty or absurdly nested, a number that is NaN, infinite or
huge, a Redis URL with a wrong scheme or a closed port. Each must end in a clear message and a
non-zero exit status, never in a Python traceback and never in silent success.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from cartsync.worker.cli import cli

#: A Redis URL whose port nothing listens on.
CLOSED = "redis://127.0.0.1:1/0"
#: Redis URLs that are not Redis URLs at all.
NOT_REDIS = ["http://127.0.0.1:6379/0", "nonsense", "redis://127.0.0.1:99999/0"]
#: Numbers no option should take.
NOT_NUMBERS = ["nan", "inf", "-1", "1e30", "abc"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file of each bad kind, plus a valid body."""
    root = tmp_path_factory.mktemp("mistakes")
    made = {
        "missing": root / "missing.json",
        "directory": root,
        "binary": root / "binary.json",
        "empty": root / "empty.json",
        "deep": root / "deep.json",
        "nan": root / "nan.json",
        "huge": root / "huge.json",
        "valid": root / "valid.json",
    }
    made["binary"].write_bytes(os.urandom(512) + b"\x00\xff")
    made["empty"].write_text("")
    made["deep"].write_text("[" * 50_000 + "]" * 50_000)
    made["nan"].write_text('{"order": {"note": NaN}}')
    made["huge"].write_text('{"order": {"n": ' + "9" * 10_000 + "}}")
    made["valid"].write_text(json.dumps({"order": {"merchant": {"id": "m"}}}))
    return {name: str(path) for name, path in made.items()}


def cases(files) -> list[list[str]]:
    bad_files = [files[k] for k in ("missing", "directory", "binary", "empty", "deep", "nan",
                                    "huge")]
    out: list[list[str]] = []
    for command in (["validate"], ["enqueue"], ["dlq", "import"]):
        out.append(command)
        out += [[*command, path] for path in bad_files if not (
            # An empty import file is "nothing to import", as rq says "Nothing to do".
            command == ["dlq", "import"] and path == files["empty"]
        )]
    out += [["enqueue", files["valid"], "--version", n] for n in NOT_NUMBERS]
    out += [["enqueue", files["valid"], "--redis-url", url] for url in [CLOSED, *NOT_REDIS]]
    out += [["validate", files["valid"], "--options", "nonsense"]]
    out += [["status", "--max-dead-age", n] for n in NOT_NUMBERS if n != "1e30"]
    out += [["status", "--redis-url", url] for url in [CLOSED, *NOT_REDIS]]
    out += [["metrics", "--port", n] for n in ["99999", "-1", "nan", "abc"]]
    out += [["sandbox", "--port", n] for n in ["99999", "-1", "nan", "abc"]]
    out += [["sandbox", "--merchants", files[k]] for k in ("missing", "directory", "binary",
                                                           "empty")]
    out += [["sandbox", "--account", "no-colons"], ["sandbox", "--fail-rate", "2"]]
    for command in (["dlq", "list"], ["dlq", "stats"], ["dlq", "export"]):
        out += [[*command, "--redis-url", url] for url in [CLOSED, *NOT_REDIS]]
    for option in ("--since", "--until"):
        out += [["dlq", "list", option, value] for value in
                ["garbage", "9" * 30 + "d", "nan", "-5m", "2h later"]]
    out += [["dlq", "list", "--status", "abc"], ["dlq", "list", "--reason", "nope"],
            ["dlq", "list", "--limit", "-1"], ["dlq", "list", "--cursor", "not-an-id"]]
    out += [["dlq", "show"], ["dlq", "show", "nope"], ["dlq", "show", ""],
            ["dlq", "edit", "nope"], ["dlq", "drop", "nope", "--yes"],
            ["dlq", "drop"], ["dlq", "replay"], ["dlq", "replay", "nope", "--yes"]]
    out += [["dlq", "replay", "--all", "--yes", "--rate", n] for n in NOT_NUMBERS if n != "1e30"]
    out += [["dlq", "purge"]]
    out += [["dlq", "purge", "--older-than", value, "--yes"] for value in
            ["garbage", "9" * 30 + "s", "nan", "-1d"]]
    out += [["dlq", "audit", "--limit", n] for n in NOT_NUMBERS]
    out += [["nosuchcommand"], ["dlq", "nosuchcommand"]]
    # `serve` must refuse before gunicorn starts: each case here fails on its options.
    out += [["serve", "--port", n] for n in ["99999", "-1", "nan", "abc"]]
    out += [["serve", "--workers", n] for n in ["0", "-1", "abc", "100000"]]
    out += [["serve", "--threads", "0"], ["serve", "--timeout", "0"], ["serve", "--timeout", "nan"]]
    out += [["serve", "--batch-max", n] for n in ["0", "-5", "abc"]]
    out += [["serve", "--new-token", ""], ["serve", "--new-token", "  "], ["serve", "extra"]]
    return out


#: No merchant accounts at all: `serve` refuses to start without them.
NO_ACCOUNTS: dict[str, str | None] = {
    "CARTSYNC_SEQURA_USERNAME": None,
    "CARTSYNC_SEQURA_PASSWORD": None,
    "CARTSYNC_MERCHANTS_FILE": None,
}
#: Settings given wrong through the environment.
BAD_ENVIRONMENTS: list[dict[str, str | None]] = [
    {"CARTSYNC_RETRY_CAP_S": "nan"},
    {"CARTSYNC_METRICS_PORT": "99999"},
    {"CARTSYNC_REDIS_URL": "http://x"},
    {"CARTSYNC_REDIS_URL": ""},
    {"CARTSYNC_VISIBILITY_TIMEOUT_S": "-1"},
    {"CARTSYNC_WORKER_BATCH": "0"},
    {"CARTSYNC_LOCK_TTL_S": "1"},
    {"CARTSYNC_SEQURA_HTTP_HOSTS": "live.sequrapi.com"},
]


def environment_cases(files) -> list[tuple[list[str], dict[str, str | None]]]:
    """(arguments, environment) for mistakes made in the environment."""
    accounts = {"CARTSYNC_SEQURA_USERNAME": "u", "CARTSYNC_SEQURA_PASSWORD": "p"}
    commands = [["status"], ["enqueue", files["valid"]], ["metrics", "--port", "0"],
                ["validate", files["valid"]], ["dlq", "list"], ["serve"]]  # fmt: skip
    out = [(argv, {**accounts, **env}) for argv in commands for env in BAD_ENVIRONMENTS]
    out += [(["serve"], NO_ACCOUNTS)]
    out += [(["serve"], {**NO_ACCOUNTS, "CARTSYNC_MERCHANTS_FILE": files[kind]})
            for kind in ("missing", "directory", "binary", "empty")]  # fmt: skip
    out += [(["serve"], {**accounts, "CARTSYNC_PRODUCERS_FILE": files[kind]})
            for kind in ("missing", "directory", "binary", "empty")]  # fmt: skip
    return out


def test_no_mistake_ends_in_a_traceback_or_silent_success(files, redis_client):
    """Every case exits non-zero with a message, and none raises an exception to the user."""
    crashed, silent = [], []
    no_env: dict[str, str | None] = {}
    every = [(argv, no_env) for argv in cases(files)] + environment_cases(files)
    for argv, env in every:
        result = CliRunner(env=env).invoke(cli, argv, input="")
        shown = " ".join([*(f"{k}={v}" for k, v in env.items()), *argv])[:160]
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            crashed.append(f"{shown}: {type(result.exception).__name__}")
        elif "Traceback" in result.output:
            crashed.append(f"{shown}: a traceback in the output")
        elif result.exit_code == 0:
            silent.append(shown)
    report = "\n".join(["tracebacks:", *crashed, "exit 0 for a mistake:", *silent])
    assert not crashed, report
    assert not silent, report


@pytest.mark.parametrize("env", BAD_ENVIRONMENTS, ids=lambda env: next(iter(env)))
def test_a_bad_setting_is_named_in_one_line(env):
    """A wrong CARTSYNC_* variable stops a command with exit 2 and one line naming it."""
    [(name, _)] = env.items()
    result = CliRunner(env=env).invoke(cli, ["status"])
    assert result.exit_code == 2
    [line] = [line for line in result.output.splitlines() if name in line]
    assert line.startswith("Error: ")
