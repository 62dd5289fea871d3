import re

from conftest import run_berth

# Every verb a user reaches from `berth --help` (hidden `supervise` excepted).
VERBS = {"version", "generate", "schema", "expand", "run", "list", "instances", "ps", "deploy",
         "deploy-local", "start", "stop", "restart", "delete", "logs", "exec", "rollback",
         "history", "up", "down", "template", "attach", "systemd-unit", "new", "screens",
         "image", "check"}


def listed_commands(help_text: str) -> set[str]:
    section = help_text.split("Commands:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^  ([a-z][a-z-]*)\s", section, re.M)}


def test_help_lists_every_verb_and_the_global_options():
    result = run_berth("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: berth [OPTIONS] COMMAND [ARGS]...")
    assert listed_commands(result.stdout) == VERBS
    for option in ("--version", "--install-completion"):
        assert option in result.stdout


def test_new_group_has_one_command_per_template():
    result = run_berth("new", "--help")
    assert result.returncode == 0, result.stderr
    assert listed_commands(result.stdout) == {"services", "ioc", "deployment", "generic-ioc"}


def test_unknown_command_is_a_usage_error():
    result = run_berth("no-such-command")
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr
    assert "Traceback" not in result.stderr
