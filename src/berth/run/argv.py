"""Argument reading for the commands that run without typer (`berth.cli.main.FAST_COMMANDS`,
and `berth run` inside the local backend's launcher).

Only the ordinary spellings are read here (`--option value`, `--option=value`, flags,
positionals, `--` to end options); anything else (help, abbreviations, unknown options, a wrong
number of arguments) gives None, and typer then parses the same arguments and words any mistake
as it does for every command. Tests check that both read ordinary arguments alike.
"""

from pathlib import Path

TYPE_CHECKING = False  # (typing is not imported on the IOC start-up path)
if TYPE_CHECKING:
    from collections.abc import Mapping

    # option -> (destination, kind): kind "one" keeps the last value, "many" all, "flag" none
    Spec = Mapping[str, tuple[str, str]]


class Args:
    def __init__(self) -> None:
        self.one: dict[str, str] = {}
        self.many: dict[str, list[str]] = {}
        self.flags: set[str] = set()
        self.positional: list[str] = []

    def paths(self, dest: str) -> list[Path]:
        return [Path(p) for p in self.many.get(dest, [])]

    def path(self, dest: str) -> Path | None:
        return Path(self.one[dest]) if dest in self.one else None


def parse(args: list[str], spec: "Spec", positional: int) -> "Args | None":
    """Options as typer would read them, or None for anything else (help, mistakes)."""
    result = Args()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            result.positional.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            result.positional.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name not in spec:
            return None
        dest, kind = spec[name]
        if kind == "flag":
            if eq:
                return None
            result.flags.add(dest)
            continue
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        if kind == "many":
            result.many.setdefault(dest, []).append(value)
        else:
            result.one[dest] = value
    return result if len(result.positional) == positional else None
