from conftest import run_berth


def test_help_lists_commands_and_exits_zero():
    result = run_berth("--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_berth("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
