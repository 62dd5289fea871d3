"""Load databases into real EPICS, without iocInit, and collect every error EPICS reports.

EPICS stops reading a file at its first fatal error (unknown record type, unknown field, …), so
the worker loads a file, notes the errors, blanks out the record where loading stopped (keeping
line numbers) and loads again, until the file loads or nothing more can be blanked.

Each instance is checked in its own process, because a process can hold one database only:

    python -m berth.epics.dbload DBD DB MACROS [DB MACROS...]   (prints JSON: the errors)

For a Generic IOC present on this host the same is done by its own binary, with a script that
loads its dbd and the records and exits (`generic_ioc_script`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from berth.fsutil import read_text

RESULT_MARKER = "berth-check-result: "
MAX_ROUNDS = 200  # fatal errors per file before giving up (each costs one reload)
TIMEOUT = 120.0

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_IN_FILE = re.compile(r'in file "(?P<file>[^"]+)" line (?P<line>\d+)')
_CONTEXT = re.compile(r"^\s*(?P<line>\d+) \| ")
_RECORD_START = re.compile(r"^\s*g?record\s*\(")
_NOISE = ("Failed to load", "iocsh Error")
_SYNTAX = "syntax error"  # its own error, unless it follows another one at the same place


@dataclass(frozen=True)
class DbError:
    file: str
    line: int
    message: str

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "message": self.message}


def parse_errors(output: str, default_file: str) -> tuple[list[DbError], int | None]:
    """EPICS's messages → errors with file and line; also the line where loading stopped.

    EPICS prints `ERROR: <what>`, then `at or before … in file "F" line N` (or only a context
    line ` N | text`) for the place; a hint ("Did you mean …") may follow the message.
    """
    errors: list[DbError] = []
    pending: list[str] = []  # messages waiting for their place
    last_line: int | None = None
    file = default_file
    for raw in _ANSI.sub("", output).splitlines():
        text = raw.strip()
        if not text:
            continue
        where = _IN_FILE.search(text)
        context = _CONTEXT.match(raw)
        if where or context:
            if where:
                file, line = where["file"], int(where["line"])
                head = text[: where.start()].replace("ERROR:", "").strip()
                head = re.sub(r"\s*at or before .*$", "", head).strip()
                if head and not pending:
                    pending.append(head)
            else:
                assert context is not None
                line = int(context["line"])
            last_line = line
            for message in pending:
                if message == _SYNTAX:
                    if any(e.file == file and e.line == line for e in errors):
                        continue  # the parser's echo of the error just reported
                    token = re.search(r"at or before ('[^']*')", text)
                    message += f" at or before {token[1]}" if token else ""
                errors.append(DbError(file, line, message))
            pending = []
            continue
        if text.startswith("ERROR:"):
            message = text[len("ERROR:"):].strip()
            if message and not any(message.startswith(n) for n in _NOISE):
                pending.append(message)
        elif text.startswith("Did you mean") and pending:
            pending[-1] += f" ({text})"
        elif text.startswith("Did you mean") and errors:
            last = errors[-1]
            errors[-1] = DbError(last.file, last.line, f"{last.message} ({text})")
        elif pending == [] and _is_diagnostic(text):
            pending.append(text)  # e.g. "Incomplete expression … in CALC expression 'A+'"
    for message in pending:
        errors.append(DbError(file, last_line or 0, message))
    return _merge_details(errors), last_line


def _is_diagnostic(text: str) -> bool:
    lowered = text.lower()
    return not text.startswith(("INFO", "rc ", "#")) and " WARN " not in text and (
        "expression" in lowered or "not found" in lowered or "parsing" in lowered)


def _merge_details(errors: list[DbError]) -> list[DbError]:
    """A detail line printed just before an error about the same line joins that error."""
    merged: list[DbError] = []
    for err in errors:
        if merged and merged[-1].line == err.line and merged[-1].file == err.file and \
                not merged[-1].message.startswith("Can't") and err.message.startswith("Can't"):
            merged[-1] = DbError(err.file, err.line, f"{err.message} ({merged[-1].message})")
        else:
            merged.append(err)
    return merged


def record_span(lines: list[str], line: int) -> tuple[int, int] | None:
    """0-based [start, end) of the record statement holding 1-based `line`, braces matched
    outside quotes; None when the line is not inside a record."""
    start = None
    for i in range(min(line, len(lines)) - 1, -1, -1):
        if _RECORD_START.match(lines[i]):
            start = i
            break
    if start is None:
        return None
    depth, seen_brace, quote = 0, False, False
    for i in range(start, len(lines)):
        text = lines[i]
        j = 0
        while j < len(text):
            c = text[j]
            if quote:
                if c == "\\":
                    j += 1
                elif c == '"':
                    quote = False
            elif c == '"':
                quote = True
            elif c == "#":
                break
            elif c == "{":
                depth += 1
                seen_brace = True
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return start, i + 1
            j += 1
        if not seen_brace and i >= line - 1 and ")" in text:
            return start, i + 1  # a record without a body
    return start, len(lines)


# -- the worker (runs in its own process) -------------------------------------------------------


def _capture(call: object) -> str:
    """Run `call()` with fds 1 and 2 sent to a temporary file; return what was written."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            call()  # type: ignore[operator]
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        return out.read().decode(errors="replace")


def _load_all(dbd: Path, loads: list[tuple[Path, str]]) -> list[DbError]:
    os.environ["PVXS_QSRV_ENABLE"] = "NO"
    os.environ.setdefault("EPICS_PVAS_INTF_ADDR_LIST", "127.0.0.1")
    from berth.epics import libs as epics
    from berth.epics.softioc import SoftIoc

    include = os.environ.get("EPICS_DB_INCLUDE_PATH")
    os.environ["EPICS_DB_INCLUDE_PATH"] = os.pathsep.join(
        p for p in (str(dbd.parent), include, epics.dbd_search_path()) if p)
    holder: dict[str, object] = {}

    def setup() -> None:
        ioc = SoftIoc()
        holder["ioc"] = ioc
        holder["rc"] = ioc.command(f"dbLoadDatabase {_quote(str(dbd))}") or \
            ioc.command("ioc_registerRecordDeviceDriver pdbbase")
        ioc.libs.com.errlogFlush()

    text = _capture(setup)
    if holder.get("rc"):
        errors, _ = parse_errors(text, str(dbd))
        return errors or [DbError(str(dbd), 0, "EPICS could not load this dbd")]
    ioc = holder["ioc"]
    found: list[DbError] = []
    for db, macros in loads:
        found += _load_one(ioc, db, macros)
    return found


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _load_one(ioc: object, db: Path, macros: str) -> list[DbError]:
    lines = read_text(db, errors="replace").splitlines()
    seen: dict[tuple[int, str], DbError] = {}
    work = Path(tempfile.mkdtemp(prefix="berth-check-")) / db.name
    current = db
    try:
        for _ in range(MAX_ROUNDS):
            status: dict[str, int] = {}

            def load(path: Path = current, status: dict[str, int] = status) -> None:
                command = f"dbLoadRecords {_quote(str(path))} {_quote(macros)}"
                status["rc"] = ioc.command(command)  # type: ignore[attr-defined]
                ioc.libs.com.errlogFlush()  # type: ignore[attr-defined]

            output = _capture(load)
            errors, stopped = parse_errors(output, str(current))
            for err in errors:
                key = (err.line, err.message)
                file = str(db) if err.file in (str(current), str(db)) else err.file
                seen.setdefault(key, DbError(file, err.line, err.message))
            if status["rc"] == 0 or stopped is None:
                if status["rc"] != 0 and not errors:
                    seen.setdefault((0, "load failed"), DbError(
                        str(db), 0, "EPICS could not load this file: " + output.strip()[-300:]))
                break
            span = record_span(lines, stopped)
            if span is None or all(not lines[i].strip() for i in range(*span)):
                break  # nothing left to skip: the rest of the file cannot be read
            for i in range(*span):
                lines[i] = ""
            work.write_text("\n".join(lines) + "\n")
            current = work
    finally:
        work.unlink(missing_ok=True)
        work.parent.rmdir()
    return sorted(seen.values(), key=lambda e: e.line)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2 == 0:
        print(__doc__, file=sys.stderr)
        return 2
    dbd = Path(argv[0])
    loads = [(Path(argv[i]), argv[i + 1]) for i in range(1, len(argv), 2)]
    errors = _load_all(dbd, loads)
    # EPICS threads may still print (e.g. pvxs warnings): the result is found by its marker.
    sys.stdout.write("\n" + RESULT_MARKER + json.dumps([e.as_json() for e in errors]) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip EPICS exit handlers: nothing was started that needs stopping


# -- the parent side ------------------------------------------------------------------------------


def load_databases(dbd: Path, loads: list[tuple[Path, str]], env: dict[str, str] | None = None
                   ) -> list[DbError]:
    """Load each (database, macros) on top of `dbd` (berth's embedded EPICS) in a subprocess;
    return the errors."""
    argv = [sys.executable, "-m", "berth.epics.dbload", str(dbd)]
    for db, macros in loads:
        argv += [str(db), macros]
    return _run(argv, env, str(loads[0][0]) if loads else str(dbd))


def generic_ioc_script(dbd: Path, loads: list[tuple[Path, str]]) -> str:
    """An st.cmd for a Generic IOC binary: load its dbd and the records, then exit."""
    lines = ["on error continue", f"dbLoadDatabase {_quote(str(dbd))}",
             "ioc_registerRecordDeviceDriver pdbbase"]
    lines += [f"dbLoadRecords {_quote(str(db))} {_quote(macros)}" for db, macros in loads]
    return "\n".join([*lines, "exit", ""])


def load_with_binary(binary: Path, dbd: Path, loads: list[tuple[Path, str]], work: Path,
                     env: dict[str, str] | None = None) -> list[DbError]:
    """Load with the Generic IOC's own binary (its dbd needs its own compiled support).
    Only the first fatal error of each file is seen this way."""
    script = work / "check.cmd"
    script.write_text(generic_ioc_script(dbd, loads))
    full_env = {**os.environ, **(env or {})}
    try:
        result = subprocess.run([str(binary), str(script)], capture_output=True, text=True,
                                timeout=TIMEOUT, stdin=subprocess.DEVNULL, cwd=dbd.parent.parent,
                                env=full_env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [DbError(str(binary), 0, f"the Generic IOC could not be run: {exc}")]
    errors, _ = parse_errors(result.stdout + result.stderr,
                             str(loads[0][0]) if loads else str(dbd))
    return errors


def _run(argv: list[str], env: dict[str, str] | None, what: str) -> list[DbError]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT,
                                env=full_env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return [DbError(what, 0, f"loading into EPICS took longer than {TIMEOUT:.0f} s")]
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    try:
        data = json.loads(lines[-1][len(RESULT_MARKER):])
    except (IndexError, ValueError):
        tail = (result.stderr or result.stdout).strip()[-400:]
        return [DbError(what, 0, f"the EPICS loader failed (exit {result.returncode}): {tail}")]
    return [DbError(str(d["file"]), int(d["line"]), str(d["message"])) for d in data]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
