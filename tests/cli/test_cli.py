import re

import pytest

from conftest import run_berth

# Every verb a user reaches from `berth --help` (hidden `supervise` excepted).
VERBS = {"version", "generate", "schema", "expand", "run", "list", "instances", "ps", "deploy",
         "deploy-local", "start", "stop", "restart", "delete", "logs", "exec", "rollback",
         "history", "up", "down", "template", "attach", "systemd-unit", "new", "screens",
         "image", "images", "check", "ioc-alive", "ioc-stop", "serve", "pv"}


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
    assert listed_commands(result.stdout) == {"services", "ioc", "service", "deployment",
                                              "generic-ioc"}


def test_unknown_command_is_a_usage_error():
    result = run_berth("no-such-command")
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr
    assert "Traceback" not in result.stderr


def _fast_path_tables() -> dict[str, dict[str, tuple[str, str, str]]]:
    from berth.cli.ioc import GENERATE_OPTIONS, SCHEMA_OPTIONS
    from berth.run.launch import RUN_OPTIONS

    return {"generate": GENERATE_OPTIONS, "schema": SCHEMA_OPTIONS, "run": RUN_OPTIONS}


# verb -> (its usage line, options its help must show besides those of the fast-path tables)
VERB_HELP = {
    "generate": ("Usage: berth generate [OPTIONS] CONFIG", []),
    "schema": ("Usage: berth schema [OPTIONS]", []),
    "run": ("Usage: berth run [OPTIONS] CONFIG_DIR", []),
    "deploy": ("Usage: berth deploy [OPTIONS] NAME [VERSION]",
               ["-r, --repo", "-b, --backend", "-t, --target", "--json", "--force", "--dry-run"]),
    "ps": ("Usage: berth ps [OPTIONS]", ["-b, --backend", "-t, --target", "--json", "--all"]),
    "logs": ("Usage: berth logs [OPTIONS]", ["-f, --follow", "--previous", "-b, --backend"]),
    "up": ("Usage: berth up [OPTIONS]", ["--all", "--latest", "-y, --yes", "--dry-run"]),
}


@pytest.mark.parametrize("verb", sorted(VERB_HELP))
def test_verb_help_shows_its_usage_and_every_option(verb: str) -> None:
    usage, options = VERB_HELP[verb]
    options = options + sorted(_fast_path_tables().get(verb, {}))
    result = run_berth(verb, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage), result.stdout
    # the option column: "  -o, --output PATH  Folder for ..." -> {"-o", "--output"}
    columns = [line.split("  ")[1] for line in result.stdout.splitlines()
               if line.startswith("  -")]
    shown = {word for column in columns for word in re.findall(r"(?<![\w-])-[-\w]+", column)}
    for option in options:
        for spelling in option.split(", "):
            assert spelling in shown, f"{spelling} missing from `berth {verb} --help`"
