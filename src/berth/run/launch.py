"""`berth run`: turn an instance config folder into a running IOC.

Precedence (system.md §1): `start.sh` > instance YAML [+ runtime.yaml] > `st.cmd` [+ ioc.subst].
`plan` checks the folders and decides how to start (cheap). `build` generates st.cmd/ioc.subst
from the instance YAML, expands ioc.subst into ioc.db and waits for the devices of
wait_list.yaml; every mistake there is a BerthError. `exec_launch` then replaces this process by
the lean runner (`berth.run.runner`, same PID) while a forked child runs `build`, so that
Python start-up and EPICS loading overlap generation; the runner starts the IOC's script only
when the build succeeded, otherwise it exits with the build's code and its problems printed.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from berth import paths as softioc

# (Not importing typing, dataclasses and berth.errors before the builder is forked keeps an
# IOC's start-up ~15 ms shorter: the builder imports them while the runner starts.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from berth.errors import BerthError, Problem

GENERIC_IOC_BINARY = Path("bin") / "linux-x86_64" / "ioc"
DEFAULT_IOC_DIR = "/epics/ioc"
DEFAULT_RUNTIME_DIR = "/epics/runtime"
_ENTITIES_LINE = re.compile(r"^entities\s*:", re.MULTILINE)


class RunOptions:
    def __init__(self, config_dir: Path, ioc_dir: Path = Path(DEFAULT_IOC_DIR),
                 runtime_dir: Path = Path(DEFAULT_RUNTIME_DIR), ioc_name: str | None = None,
                 console_socket: Path | None = None, defs: list[Path] | None = None,
                 wait: bool = True, strict: bool = False) -> None:
        self.config_dir = config_dir
        self.ioc_dir = ioc_dir
        self.runtime_dir = runtime_dir
        self.ioc_name = ioc_name
        self.console_socket = console_socket
        self.defs: list[Path] = [] if defs is None else defs
        self.wait = wait
        self.strict = strict

    def __repr__(self) -> str:
        return f"RunOptions({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class Launch:
    """What to exec, and what must be built in the runtime folder before the IOC starts."""

    def __init__(self, argv: list[str], env: dict[str, str],
                 mode: str,  # "start.sh" | "yaml" | "st.cmd"
                 st_cmd: Path | None = None, options: RunOptions | None = None,
                 instance: Path | None = None,  # the instance YAML to generate from (mode "yaml")
                 subst: Path | None = None,  # expanded into <runtime>/ioc.db when it exists
                 include: list[Path] | None = None, ioc_dir: Path | None = None,
                 embedded: bool = True) -> None:
        self.argv = argv
        self.env = env
        self.mode = mode
        self.st_cmd = st_cmd
        self.options = options
        self.instance = instance
        self.subst = subst
        self.include: list[Path] = [] if include is None else include
        self.ioc_dir = ioc_dir
        self.embedded = embedded

    def __repr__(self) -> str:
        return f"Launch({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _error(message: str, where: str | Path) -> BerthError:
    """A BerthError about `where` (berth.errors is imported when a mistake is found)."""
    from berth.errors import BerthError, Location, Problem

    return BerthError(Problem(message, Location(where)))


def default_ioc_name(config_dir: Path) -> str:
    """The folder holding `config/` names the instance (services/<ioc>/config); else the folder."""
    folder = config_dir.resolve()
    return folder.parent.name if folder.name == "config" else folder.name


def generic_binary(ioc_dir: Path) -> Path | None:
    binary = ioc_dir / GENERIC_IOC_BINARY
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def instance_yaml_candidates(config_dir: Path) -> list[Path]:
    """YAML files that look like an instance (ioc.yaml, or top-level `entities:`)."""
    found = []
    for path in sorted(config_dir.glob("*.y*ml")):
        if path.name in ("runtime.yaml", "wait_list.yaml") or ".ibek.support." in path.name:
            continue
        if path.name == "ioc.yaml" or _ENTITIES_LINE.search(path.read_text(errors="replace")):
            found.append(path)
    return found


def support_db_dirs() -> list[Path]:
    """`db/` folders of the support modules of a Generic IOC ($EPICS_ROOT/support/*/db)."""
    root = Path(os.environ.get("EPICS_ROOT", "/epics")) / "support"
    return sorted(p for p in root.glob("*/db") if p.is_dir()) if root.is_dir() else []


def search_path(options: RunOptions, embedded: bool) -> list[Path]:
    """Template/db search path: config folder and runtime folder first."""
    paths = [options.config_dir.resolve(), options.runtime_dir.resolve()]
    if embedded:
        paths.append(softioc.db_dir())
    return paths + support_db_dirs()


def _map_paths(text: str, mapping: dict[str, str]) -> str:
    """Rewrite container paths in a hand-written st.cmd when running it outside its container,
    e.g. `/epics/ioc/config` → the config folder. One pass, longest prefix first, so a prefix
    that maps to itself (inside the container) still shields it from a shorter one."""
    if all(old == new for old, new in mapping.items()):
        return text
    keys = sorted(mapping, key=len, reverse=True)
    pattern = re.compile("(?:" + "|".join(re.escape(k) for k in keys) + r")(?=[/\"'\s,)]|$)",
                         flags=re.MULTILINE)
    return pattern.sub(lambda m: mapping[m.group(0)], text)


def _only_comments(subst: Path) -> bool:
    """Whether a substitution file holds nothing but blank and `#` comment lines (as generated
    for an instance without database templates): it expands to nothing."""
    try:
        text = subst.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return False  # msi reports it
    return all(not line or line.startswith("#") for line in map(str.strip, text.splitlines()))


def _expand_subst(subst: Path, out: Path, include: list[Path], strict: bool) -> None:
    text = ""
    if not _only_comments(subst):  # (else msi's import and parse would cost ~10 ms for nothing)
        from berth.epics import substitutions as msi

        warnings: list[Problem] = []
        text = msi.expand_substitutions(subst, include, {}, strict=strict, warnings=warnings)
        for warning in warnings:
            print(f"berth: {warning}", file=sys.stderr)
    from berth.fsutil import atomic_write

    atomic_write(out, text)


def _generate(options: RunOptions, instance: Path, ioc_dir: Path, embedded: bool) -> None:
    from berth.ioc import generate as gen

    files = gen.find_instance_files(options.config_dir.resolve())
    defs = (softioc.support_files() if embedded else gen.default_defs()) + list(options.defs)
    gen_options = gen.GenerateOptions.from_env(
        ioc_dir=str(ioc_dir), runtime_dir=str(options.runtime_dir.resolve()),
        ioc_name=options.ioc_name,
    )
    generated = gen.generate(files, defs, gen_options)
    gen.write_outputs(generated, options.runtime_dir)
    if generated.wait_list is None:
        (options.runtime_dir / "wait_list.yaml").unlink(missing_ok=True)


def _check_console_free(socket_path: Path) -> None:
    if not socket_path.exists():
        return
    from berth.run.console import is_live

    if is_live(socket_path):
        raise _error(f"another IOC is already running with console socket {socket_path}",
                     socket_path)


def prepare(options: RunOptions) -> Launch:
    """Plan, then build the runtime folder in this process; return what to exec."""
    launch = plan(options)
    build(launch)
    return launch


def plan(options: RunOptions) -> Launch:
    """The cheap part: check the folders, choose how to start, compute paths and environment."""
    config = options.config_dir
    if not config.is_dir():
        raise _error("config folder not found", config)
    config = config.resolve()
    options.config_dir = config
    options.ioc_name = options.ioc_name or default_ioc_name(config)
    runtime = options.runtime_dir.resolve()
    try:
        runtime.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(f"cannot create the runtime folder: {exc.strerror}", runtime) from None
    options.runtime_dir = runtime
    socket_path = (options.console_socket or runtime / "console.sock").absolute()
    options.console_socket = socket_path

    binary = generic_binary(options.ioc_dir)
    embedded = binary is None
    ioc_dir = softioc.ioc_dir() if embedded else options.ioc_dir.resolve()
    include = search_path(options, embedded)
    env = {
        "IOC_NAME": options.ioc_name,
        "IOC": str(ioc_dir),
        "RUNTIME_DIR": str(runtime),
        "EPICS_DB_INCLUDE_PATH": os.pathsep.join(str(p) for p in include),
        "STREAM_PROTOCOL_PATH": os.pathsep.join(
            p for p in (str(config), str(runtime / "protocol"),
                        os.environ.get("STREAM_PROTOCOL_PATH", "")) if p),
    }
    if embedded:
        from berth.epics import libs as epics

        env["EPICS_DB_INCLUDE_PATH"] += os.pathsep + epics.dbd_search_path()
        env["PVXS_QSRV_ENABLE"] = "YES"

    # Generation (`_global.get_env`) and the IOC see the same environment as in a container.
    os.environ.update(env)
    start_sh = config / "start.sh"
    if start_sh.is_file():
        argv = [str(start_sh)] if os.access(start_sh, os.X_OK) else ["/bin/sh", str(start_sh)]
        return Launch(argv, env, "start.sh", options=options)

    candidates = instance_yaml_candidates(config)
    st_cmd = config / "st.cmd"
    instance = None
    if candidates:
        instance = candidates[0]
        mode, st_cmd, subst = "yaml", runtime / "st.cmd", runtime / "ioc.subst"
    elif st_cmd.is_file():
        mode, subst = "st.cmd", config / "ioc.subst"
        mapped = _map_paths(st_cmd.read_text(errors="replace"), {
            f"{DEFAULT_IOC_DIR}/config": str(config),
            f"{options.ioc_dir}/config": str(config),
            DEFAULT_IOC_DIR: str(ioc_dir),
            str(options.ioc_dir): str(ioc_dir),
            DEFAULT_RUNTIME_DIR: str(runtime),
        })
        if mapped != st_cmd.read_text(errors="replace"):
            from berth.fsutil import atomic_write

            st_cmd = runtime / "st.cmd"
            atomic_write(st_cmd, mapped)
    else:
        raise _error("nothing to run: expected start.sh, an instance YAML (ioc.yaml "
                     "or a *.yaml with 'entities:') or st.cmd", config)

    _check_console_free(socket_path)
    runner = [sys.executable, "-m", "berth.run.runner", "--name", options.ioc_name,
              "--socket", str(socket_path)]
    if binary is not None:
        runner += ["--exec", str(binary), str(st_cmd)]
    else:
        runner += ["--startup", str(st_cmd)]
    return Launch(runner, env, mode, st_cmd, options, instance, subst, include, ioc_dir,
                  embedded)


def build(launch: Launch) -> None:
    """The expensive part: generate from the instance YAML, expand ioc.subst into ioc.db, wait
    for the devices of wait_list.yaml. Raises BerthError on the user's mistakes."""
    options = launch.options
    if launch.mode == "start.sh" or options is None:
        return
    runtime = options.runtime_dir
    if launch.instance is not None and launch.ioc_dir is not None:
        _generate(options, launch.instance, launch.ioc_dir, launch.embedded)
    if launch.subst is not None and launch.subst.is_file():
        _expand_subst(launch.subst, runtime / "ioc.db", launch.include, options.strict)
    wait_list = runtime / "wait_list.yaml"
    if launch.mode == "yaml" and options.wait and wait_list.is_file():
        from berth.run import waitlist

        waitlist.wait_for(waitlist.load(wait_list), wait_list,
                          log=lambda text: print(text, file=sys.stderr, flush=True))


def _build_in_child(launch: Launch) -> list[str]:
    """Fork a process that builds the runtime folder while this one becomes the runner, so the
    runner's start-up and EPICS's loading overlap generation. The runner starts the IOC's
    start-up script once the builder reports success on a pipe, else exits with its code."""
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        from berth.errors import BerthError

        code = 0
        try:
            build(launch)
            os.write(ready_w, b"1")
        except BerthError as err:
            for problem in err.problems:
                print(f"berth: {problem}", file=sys.stderr)
            code = err.exit_code
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(ready_w)
    os.set_inheritable(ready_r, True)
    return ["--after", f"{pid}:{ready_r}"]


def exec_launch(launch: Launch, overlap: bool = True) -> NoReturn:
    """Replace this process by the IOC (same PID). As root, first drop the capabilities that
    make EPICS lock memory and ask for real-time priorities. With `overlap`, the runtime folder
    is built by a child process while the IOC process starts; else here, first."""
    from berth.run.caps import drop_bounding_caps

    drop_bounding_caps()
    os.environ.update(launch.env)
    argv = list(launch.argv)
    needs_build = launch.instance is not None or (launch.subst is not None
                                                   and launch.subst.is_file())
    if needs_build and not overlap:
        build(launch)
    elif needs_build:
        # Options for the runner go before --exec/--startup's arguments.
        argv[3:3] = _build_in_child(launch)
    sys.stdout.flush()
    sys.stderr.flush()
    if launch.mode != "start.sh":
        os.chdir(launch.env["RUNTIME_DIR"])
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        raise _error(f"cannot start {argv[0]}: {exc.strerror}", argv[0]) from None
