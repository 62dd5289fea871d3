"""`berth run`: turn an instance config folder into a running IOC.

Precedence (system.md §1, `berth.paths.find_startup`): `start.sh` > `ioc.py` [+ requirements.txt]
(a Python soft IOC, `berth.run.pysoft`) > instance YAML [+ runtime.yaml] > `st.cmd`
[+ ioc.subst]. `plan` decides, without side effects, how to start: paths, environment, what to
generate (`berth check` calls it too). `prepare_runtime` does the little I/O that must precede the
start (runtime folder, a rewritten st.cmd, the console check).
`build` generates st.cmd/ioc.subst from the instance YAML, expands ioc.subst into ioc.db and
waits for the devices of wait_list.yaml; every mistake there is a BerthError. `exec_launch` then
replaces this process by the lean runner (`berth.run.runner`, same PID) while a forked child
runs `build`, so that Python start-up and EPICS loading overlap generation; the runner starts
the IOC's script only when the build succeeded, otherwise it exits with the build's code and
its problems printed.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from berth import paths
from berth.fsutil import read_text as read_bounded

# (Not importing typing, dataclasses and berth.errors before the builder is forked keeps an
# IOC's start-up ~15 ms shorter: the builder imports them while the runner starts.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

    from berth.errors import BerthError, Problem

GENERIC_IOC_BINARY = paths.GENERIC_IOC_BINARY
DEFAULT_IOC_DIR = paths.IOC_DIR
DEFAULT_RUNTIME_DIR = paths.RUNTIME_DIR

# The options of `berth run`, read by the fast path (`from_argv`) and the Typer command alike:
# option -> (destination, kind, environment variable giving its default)
RUN_OPTIONS: dict[str, tuple[str, str, str]] = {
    "--ioc-dir": ("ioc_dir", "one", "IOC"),
    "--runtime-dir": ("runtime_dir", "one", "RUNTIME_DIR"),
    "--ioc-name": ("ioc_name", "one", "IOC_NAME"),
    "--console-socket": ("console_socket", "one", ""),
    "--defs": ("defs", "many", ""),
    "--no-wait": ("no_wait", "flag", ""),
    "--strict": ("strict", "flag", ""),
    "--prebuilt": ("prebuilt", "one", ""),
}


class RunOptions:
    def __init__(self, config_dir: Path, ioc_dir: Path = Path(DEFAULT_IOC_DIR),
                 runtime_dir: Path = Path(DEFAULT_RUNTIME_DIR), ioc_name: str | None = None,
                 console_socket: Path | None = None, defs: list[Path] | None = None,
                 wait: bool = True, strict: bool = False, prebuilt: Path | None = None
                 ) -> None:
        self.config_dir = config_dir
        self.ioc_dir = ioc_dir
        self.runtime_dir = runtime_dir
        self.ioc_name = ioc_name
        self.console_socket = console_socket
        self.defs: list[Path] = [] if defs is None else defs
        self.wait = wait
        self.strict = strict
        self.prebuilt = prebuilt  # outputs built at deploy time (berth.run.prebuilt)

    def __repr__(self) -> str:
        return f"RunOptions({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    @classmethod
    def from_values(cls, config_dir: Path, ioc_dir: str | Path | None = None,
                    runtime_dir: str | Path | None = None, ioc_name: str | None = None,
                    console_socket: str | Path | None = None, defs: list[Path] | None = None,
                    no_wait: bool = False, strict: bool = False,
                    env: Mapping[str, str] | None = None,
                    prebuilt: str | Path | None = None) -> RunOptions:
        """Options as the user gave them; missing ones from $IOC, $RUNTIME_DIR, $IOC_NAME of
        `env` (default this process's), else the container defaults."""
        env = os.environ if env is None else env
        return cls(
            config_dir=Path(config_dir),
            ioc_dir=Path(ioc_dir or env.get("IOC") or DEFAULT_IOC_DIR),
            runtime_dir=Path(runtime_dir or env.get("RUNTIME_DIR") or DEFAULT_RUNTIME_DIR),
            ioc_name=ioc_name or env.get("IOC_NAME") or None,
            console_socket=Path(console_socket) if console_socket else None,
            defs=list(defs or []), wait=not no_wait, strict=strict,
            prebuilt=Path(prebuilt) if prebuilt else None,
        )

    @classmethod
    def from_argv(cls, args: list[str], env: Mapping[str, str] | None = None
                  ) -> RunOptions | None:
        """`berth run`'s arguments (after `run`), or None for anything but the ordinary
        spellings (help, mistakes): the Typer command then reads and reports them."""
        from berth.run.argv import parse

        opts = parse(args, {k: v[:2] for k, v in RUN_OPTIONS.items()}, 1)
        if opts is None:
            return None
        one = opts.one
        return cls.from_values(
            Path(opts.positional[0]), one.get("ioc_dir"), one.get("runtime_dir"),
            one.get("ioc_name"), one.get("console_socket"), opts.paths("defs"),
            "no_wait" in opts.flags, "strict" in opts.flags, env, one.get("prebuilt"))


class Launch:
    """What to exec, and what must be built in the runtime folder before the IOC starts."""

    def __init__(self, argv: list[str], env: dict[str, str],
                 mode: str,  # "start.sh" | "python" | "yaml" | "st.cmd"
                 st_cmd: Path | None = None, options: RunOptions | None = None,
                 instance: Path | None = None,  # the instance YAML to generate from (mode "yaml")
                 subst: Path | None = None,  # expanded into <runtime>/ioc.db when it exists
                 include: list[Path] | None = None, ioc_dir: Path | None = None,
                 embedded: bool = True, files: list[Path] | None = None,
                 base_env: dict[str, str] | None = None,
                 path_map: dict[str, str] | None = None,
                 rewritten: str | None = None) -> None:
        self.argv = argv
        self.env = env  # set for the IOC (and its generation) on top of `base_env`
        self.mode = mode
        self.st_cmd = st_cmd
        self.options = options
        self.instance = instance
        self.subst = subst
        self.include: list[Path] = [] if include is None else include
        self.ioc_dir = ioc_dir
        self.embedded = embedded
        self.files: list[Path] = [] if files is None else files  # paths.find_startup's
        self.base_env: dict[str, str] = {} if base_env is None else base_env
        # container path -> this host's, for a hand-written st.cmd
        self.path_map: dict[str, str] = {} if path_map is None else path_map
        self.rewritten = rewritten  # st.cmd's text with path_map applied, when it differs

    def __repr__(self) -> str:
        return f"Launch({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def generation_env(self) -> dict[str, str]:
        """The environment the IOC (and `_global.get_env` while generating) sees."""
        return {**self.base_env, **self.env}


def _error(message: str, where: str | Path) -> BerthError:
    """A BerthError about `where` (berth.errors is imported when a mistake is found)."""
    from berth.errors import BerthError, Location, Problem

    return BerthError(Problem(message, Location(where)))


def default_ioc_name(config_dir: Path) -> str:
    """The folder holding `config/` names the instance (services/<ioc>/config); else the folder."""
    folder = config_dir.resolve()
    return folder.parent.name if folder.name == "config" else folder.name


generic_binary = paths.generic_binary
support_db_dirs = paths.support_db_dirs


def search_path(options: RunOptions, embedded: bool,
                env: Mapping[str, str] | None = None) -> list[Path]:
    """Template/db search path: config folder and runtime folder first."""
    found = [options.config_dir.resolve(), options.runtime_dir.resolve()]
    if embedded:
        found.append(paths.db_dir())
    return found + paths.support_db_dirs(env)


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
        text = read_bounded(subst, errors="surrogateescape")
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


def support_defs(launch: Launch, options: RunOptions) -> list[Path]:
    """The support definitions generation reads."""
    env = launch.generation_env()
    defs = paths.support_files() if launch.embedded else paths.default_defs(env)
    return defs + list(options.defs)


def _generate(launch: Launch, options: RunOptions, ioc_dir: Path, out: Path) -> None:
    from berth.ioc import generate as gen

    gen_options = gen.GenerateOptions.from_env(
        launch.generation_env(), ioc_dir=str(ioc_dir), runtime_dir=str(options.runtime_dir),
        ioc_name=options.ioc_name,
    )
    generated = gen.generate(launch.files, support_defs(launch, options), gen_options)
    gen.write_outputs(generated, out)


def _ibek_runtime_steps(launch: Launch, options: RunOptions, out: Path) -> None:
    """What ioc-template's start.sh runs after `ibek runtime generate2`: place-files, then
    generate-autosave (request templates linked in $EPICS_ROOT/autosave as ibek does; the
    embedded soft IOC, outside any Generic IOC, keeps them in <runtime>/autosave)."""
    from berth.ioc.autosave_req import generate_autosave
    from berth.ioc.place import place_files

    root = paths.epics_root(launch.base_env)
    place_files(options.config_dir, out)
    req_dir = out / "autosave" if launch.embedded else root / "autosave"
    generate_autosave(out / "ioc.subst", out, req_dir, root / "support", options.config_dir)


def builds_outputs(launch: Launch) -> bool:
    """Whether starting `launch` generates or expands files into the runtime folder."""
    return launch.options is not None and (launch.instance is not None or (
        launch.mode == "st.cmd" and launch.subst is not None and launch.subst.is_file()))


def build_outputs(launch: Launch, out: Path) -> None:
    """Generate from the instance YAML, run ibek's runtime steps and expand ioc.subst into
    ioc.db, writing into `out` (the runtime folder, or a folder built ahead of the start, as
    the files would be in the runtime folder)."""
    options = launch.options
    assert options is not None
    if launch.instance is not None and launch.ioc_dir is not None:
        _generate(launch, options, launch.ioc_dir, out)
        _ibek_runtime_steps(launch, options, out)
    subst = out / "ioc.subst" if launch.instance is not None else launch.subst
    if subst is not None and subst.is_file():
        include = [out if p == options.runtime_dir else p for p in launch.include]
        _expand_subst(subst, out / "ioc.db", include, options.strict)


def _check_console_free(socket_path: Path) -> None:
    import stat

    try:
        mode = os.lstat(socket_path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:  # a name too long...
        raise _error(f"unusable console socket path: {exc.strerror}", socket_path) from None
    if not stat.S_ISSOCK(mode):  # berth would delete it as a stale socket: refuse instead
        raise _error("the console socket path holds something that is not a socket (a "
                     "folder or a file): move it away or give another --console-socket",
                     socket_path)
    from berth.run.console import is_live

    if is_live(socket_path):
        raise _error(f"another IOC is already running with console socket {socket_path}",
                     socket_path)


def prepare(options: RunOptions) -> Launch:
    """Plan, prepare the runtime folder and build it in this process; return what to exec."""
    launch = plan(options)
    prepare_runtime(launch)
    build(launch)
    return launch


def plan(options: RunOptions, env: Mapping[str, str] | None = None) -> Launch:
    """Decide how to start, without side effects: check the folders, choose by precedence,
    compute paths and the environment. `env`: the instance's environment (default this
    process's)."""
    base_env = dict(os.environ if env is None else env)
    config = options.config_dir
    if not config.is_dir():
        raise _error("config folder not found", config)
    config = config.resolve()
    runtime = options.runtime_dir.resolve()
    ioc_name = options.ioc_name or default_ioc_name(config)
    socket_path = (options.console_socket or runtime / "console.sock").absolute()
    decided = RunOptions(config, options.ioc_dir, runtime, ioc_name, socket_path,
                         list(options.defs), options.wait, options.strict, options.prebuilt)

    binary = paths.generic_binary(options.ioc_dir)
    embedded = binary is None
    ioc_dir = paths.ioc_dir() if embedded else options.ioc_dir.resolve()
    include = search_path(decided, embedded, base_env)
    launch_env = {
        "IOC_NAME": ioc_name,
        "IOC": str(ioc_dir),
        "RUNTIME_DIR": str(runtime),
        "EPICS_DB_INCLUDE_PATH": os.pathsep.join(str(p) for p in include),
        "STREAM_PROTOCOL_PATH": os.pathsep.join(
            p for p in (str(config), str(runtime / "protocol"),
                        base_env.get("STREAM_PROTOCOL_PATH", "")) if p),
    }
    if embedded:
        from berth.epics import libs as epics

        launch_env["EPICS_DB_INCLUDE_PATH"] += os.pathsep + epics.dbd_search_path()
        launch_env["PVXS_QSRV_ENABLE"] = "YES"
        # $(IOCSTATS)/db/... in devIocStats' entities, as /epics/support/iocStats in a container
        launch_env["IOCSTATS"] = base_env.get("IOCSTATS") or str(paths.iocstats_dir())

    startup = paths.find_startup(config)
    path_map = {
        f"{DEFAULT_IOC_DIR}/config": str(config),
        f"{options.ioc_dir}/config": str(config),
        DEFAULT_IOC_DIR: str(ioc_dir),
        str(options.ioc_dir): str(ioc_dir),
        DEFAULT_RUNTIME_DIR: str(runtime),
    }
    common = {"options": decided, "include": include, "ioc_dir": ioc_dir, "embedded": embedded,
              "files": startup.files, "base_env": base_env, "path_map": path_map}
    if startup.kind == "start.sh":
        start_sh = startup.files[0]
        argv = [str(start_sh)] if os.access(start_sh, os.X_OK) else ["/bin/sh", str(start_sh)]
        return Launch(argv, launch_env, "start.sh", **common)  # type: ignore[arg-type]

    runner = [sys.executable, "-m", "berth.run.runner", "--name", ioc_name,
              "--socket", str(socket_path)]
    if startup.kind == "python":  # its environment is built (or reused) by `build`
        from berth.run import pysoft

        runner += ["--exec", str(pysoft.interpreter(config, base_env)), str(pysoft.BOOT),
                   str(startup.files[0])]
        return Launch(runner, launch_env, "python", **common)  # type: ignore[arg-type]

    instance = None
    rewritten = None
    if startup.kind == "yaml":
        instance = startup.files[0]
        st_cmd, subst = runtime / "st.cmd", runtime / "ioc.subst"
    else:
        st_cmd, subst = startup.files[0], config / "ioc.subst"
        text = st_cmd.read_text(errors="replace")
        mapped = _map_paths(text, path_map)
        if mapped != text:
            st_cmd, rewritten = runtime / "st.cmd", mapped

    if binary is not None:
        runner += ["--exec", str(binary), str(st_cmd)]
    else:
        runner += ["--startup", str(st_cmd)]
    return Launch(runner, launch_env, startup.kind, st_cmd, instance=instance, subst=subst,
                  rewritten=rewritten, **common)  # type: ignore[arg-type]


def prepare_runtime(launch: Launch) -> None:
    """The I/O `plan` decided on: the runtime folder, a rewritten st.cmd, and that no other
    IOC serves this console socket."""
    options = launch.options
    if options is None:
        return
    try:
        paths.guarded_dir(options.runtime_dir)
    except OSError as exc:
        raise _error(f"cannot create the runtime folder: {exc.strerror}",
                     options.runtime_dir) from None
    if launch.mode == "start.sh":
        return
    if launch.rewritten is not None and launch.st_cmd is not None:
        from berth.fsutil import atomic_write

        atomic_write(launch.st_cmd, launch.rewritten)
    _check_console_free(options.console_socket or options.runtime_dir / "console.sock")


def main(args: list[str]) -> int | None:
    """`berth run ARGS` (ARGS after `run`) without typer: exec's the IOC. None: arguments the
    fast reading does not take (help, mistakes), for typer to read and report."""
    options = RunOptions.from_argv(args)
    if options is None:
        return None
    try:
        launch = plan(options)
        prepare_runtime(launch)
        exec_launch(launch)  # the runtime folder is built while the IOC process starts
    except Exception as exc:
        errors = sys.modules.get("berth.errors")  # a BerthError exists only once it is imported
        if errors is None or not isinstance(exc, errors.BerthError):
            raise
        for problem in exc.problems:
            print(f"berth: {problem}", file=sys.stderr)
        return int(exc.exit_code)
    return 0  # not reached: exec_launch replaced this process


def build(launch: Launch) -> None:
    """The expensive part: generate from the instance YAML, expand ioc.subst into ioc.db, wait
    for the devices of wait_list.yaml. Raises BerthError on the user's mistakes."""
    options = launch.options
    if launch.mode == "start.sh" or options is None:
        return
    runtime = options.runtime_dir
    if launch.mode == "python":
        from berth.run import pysoft

        pysoft.ensure_venv(options.config_dir, lambda text: print(text, file=sys.stderr,
                                                                   flush=True))
        return
    if builds_outputs(launch):
        from berth.run import prebuilt

        if options.prebuilt is None or not prebuilt.use(launch, options.prebuilt):
            build_outputs(launch, runtime)
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
    needs_build = launch.instance is not None or launch.mode == "python" or (
        launch.subst is not None and launch.subst.is_file())
    if needs_build and not overlap:
        build(launch)
    elif needs_build:
        # Options for the runner go before --exec/--startup's arguments.
        argv[3:3] = _build_in_child(launch)
    sys.stdout.flush()
    sys.stderr.flush()
    if launch.mode != "start.sh":
        os.chdir(launch.env["RUNTIME_DIR"])
    else:  # no runner watches a start.sh: say so, or `ps` would wait for a probe forever
        from berth.run import ready

        ready.publish_unprobed(Path(launch.env["RUNTIME_DIR"]))
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        raise _error(f"cannot start {argv[0]}: {exc.strerror}", argv[0]) from None
