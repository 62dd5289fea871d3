#!/usr/bin/env python3
"""Benchmark `berth generate` against `ibek runtime generate` (ibek 4.6.2), whole processes,
side by side in one run. Not run by CI.

    .venv/bin/python bench/bench_generate.py [--rounds N] [--entities N] [--cases abc]

Needs the epics-containers corpus (BERTH_CORPUS, default ../shared/corpus). Creates
bench/.work/ibek-venv with ibek 4.6.2 on first use, and a fake EPICS root with the PVI device
files both tools look up. Cases:

  (a) the corpus quadem sample (ADCore + quadem definitions), berth also with its cache off,
  (b) a generated IOC of 2,000 entities over the ADCore, asyn and motor definitions of
      ibek-support (asyn ports, motors, chains of areaDetector plugins),
  (c) `--help` of each tool, with `python -c pass` for reference,
  (d) the largest real instances of the corpus: three p47 IOCs (`bl47p-ea-dcam-01`,
      `bl47p-ea-dcam-02`, `bl47p-mo-ioc-01`) over every ibek-support definition, as
      tests/data/p47/README.md made ibek's reference outputs.

The commands of each case run interleaved (berth, ibek, berth, ibek, ...) so that both see the
same machine load; the table gives medians and the ibek/berth ratio. ibek runs as users run
it, with PVI on (it also writes screens, which berth leaves to `berth screens`), and once more
with --no-pvi for the generation alone. Outputs of both tools are compared as well.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
IBEK_VENV = WORK / "ibek-venv"
IBEK_VERSION = "4.6.2"
P47_LARGEST = ("bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01")


def corpus_dir() -> Path:
    path = Path(os.environ.get("BERTH_CORPUS") or REPO.parent / "shared" / "corpus")
    if not (path / "ibek").is_dir():
        sys.exit(f"corpus not found at {path}: set BERTH_CORPUS")
    return path


def ensure_ibek() -> Path:
    ibek = IBEK_VENV / "bin" / "ibek"
    if not ibek.exists():
        print(f"installing ibek {IBEK_VERSION} into {IBEK_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(IBEK_VENV)], check=True)
        subprocess.run([str(IBEK_VENV / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "--ignore-requires-python",
                        f"ibek=={IBEK_VERSION}"], check=True)
    version = subprocess.run([str(ibek), "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if IBEK_VERSION not in version:
        sys.exit(f"{ibek} reports version {version!r}, expected {IBEK_VERSION}")
    return ibek


def berth_command() -> list[str]:
    script = Path(sys.executable).parent / "berth"
    return [str(script)] if script.exists() else [sys.executable, "-m", "berth"]


def epics_root(corpus: Path) -> Path:
    """A fake EPICS root: pvi-defs with every PVI device file of the corpus (ibek needs them
    to generate with PVI on; an `Include`d parent without a file is given an empty one)."""
    root = WORK / "epics"
    pvi = root / "pvi-defs"
    if root.exists():
        shutil.rmtree(root)
    pvi.mkdir(parents=True)
    (root / "runtime").mkdir()
    (root / "opi").mkdir()
    sources = [*(corpus / "ibek" / "epics" / "pvi-defs").glob("*.pvi.device.yaml"),
               *(corpus / "ibek" / "support").glob("*.pvi.device.yaml"),
               *(corpus / "ibek-support").glob("*/*.pvi.device.yaml")]
    for src in sources:
        shutil.copy(src, pvi / src.name)
    for src in (REPO / "tests" / "data" / "p47" / "site-pvi").glob("*.pvi.device.yaml"):
        shutil.copy(src, pvi / src.name)  # the p47 beamline's own device files (stand-ins)
    for parent in ("asynPortDriver",):
        stub = pvi / f"{parent}.pvi.device.yaml"
        if not stub.exists():
            stub.write_text(f"label: {parent}\nchildren: []\n")
    return root


def big_ioc(path: Path, entities: int) -> Path:
    """An IOC of `entities` entities in groups of 10: an asyn port, 4 motors on it, and a
    chain of 5 areaDetector plugins fed by it."""
    lines = ['ioc_name: "{{ _global.get_env(\'IOC_NAME\') }}"',
             "description: generated benchmark IOC", "entities:"]
    for g in range(entities // 10):
        p = f"BL99B-BENCH-{g:03d}"
        lines += [
            "  - type: asyn.AsynIP",
            f"    name: port{g}",
            f"    port: 10.0.{g // 250}.{g % 250}:4000",
        ]
        for m in range(4):
            lines += [
                "  - type: motor.basic_asyn_motor",
                f"    name: motor{g}_{m}",
                f"    PORT: port{g}",
                f'    P: "{p}"',
                f'    M: ":M{m}"',
                f"    ADDR: {m}",
                f'    DESC: "Motor {m} of group {g}"',
                "    MRES: 0.001",
                "    VELO: 1.0",
                "    PREC: 3",
                "    TWV: 0.1",
            ]
        previous = f"port{g}"
        for kind, extra in (("NDROI", []), ("NDProcess", []),
                            ("NDStats", ["XSIZE: 100", "YSIZE: 100", "HIST_SIZE: 256"]),
                            ("NDFileHDF5", []),
                            ("NDStdArrays", ["TYPE: Int8", "FTVL: UCHAR", "NELEMENTS: 1024"])):
            name = f"g{g}.{kind}"
            lines += [f"  - type: ADCore.{kind}", f"    PORT: {name}",
                      f"    NDARRAY_PORT: {previous}", f'    P: "{p}"', f'    R: ":{kind}:"']
            lines += [f"    {e}" for e in extra]
            previous = name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return elapsed


def compare(case: str, rounds: int, commands: dict[str, tuple[list[str], dict[str, str]]],
            warm_up: bool = True) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    if warm_up:  # one run each first (page cache, .pyc files)
        for _name, (cmd, env) in commands.items():
            timed(cmd, env)
    for _ in range(rounds):
        for name, (cmd, env) in commands.items():
            times[name].append(timed(cmd, env))
    print(f"  {case}: done", flush=True)
    return times


def same_outputs(a: Path, b: Path) -> str:
    verdicts = []
    for name in ("st.cmd", "ioc.subst"):
        left, right = (a / name).read_text().strip(), (b / name).read_text().strip()
        verdicts.append(f"{name} {'identical' if left == right else 'DIFFERENT'}")
    return ", ".join(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per command")
    parser.add_argument("--entities", type=int, default=2000, help="size of case (b)")
    parser.add_argument("--cases", default="abcd", help="which cases to run (default: abcd)")
    args = parser.parse_args()

    corpus = corpus_dir()
    ibek = ensure_ibek()
    berth = berth_command()
    root = epics_root(corpus)
    env = dict(os.environ, EPICS_ROOT=str(root), IOC="/epics/ioc",
               RUNTIME_DIR="/epics/runtime", IOC_NAME="BENCH")
    # as installed tools run: bytecode is cached (pip compiles it at install time; an editable
    # install writes it on the warm-up run, unless this is set, as it is in some sandboxes)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = WORK / "out"
    pvi = ["--pvi-defs", str(root / "pvi-defs")]

    # (a) quadem
    ibek_dir = corpus / "ibek"
    quadem_defs = [ibek_dir / "support" / f"{n}.ibek.support.yaml" for n in ("ADCore", "quadem")]
    quadem = WORK / "quadem" / "quadem.ibek.ioc.yaml"  # a copy: ibek writes beside nothing,
    quadem.parent.mkdir(parents=True, exist_ok=True)  # but keep the corpus untouched anyway
    shutil.copy(ibek_dir / "iocs" / "quadem.ibek.ioc.yaml", quadem)
    a = {
        "berth generate": (berth + ["generate", str(quadem), *sum(
            (["--defs", str(d)] for d in quadem_defs), []), *pvi, "-o", str(out / "a-berth")],
            env),
        "berth generate, BERTH_NO_CACHE=1": (berth + ["generate", str(quadem), *sum(
            (["--defs", str(d)] for d in quadem_defs), []), *pvi, "-o",
            str(out / "a-berth-nocache")], dict(env, BERTH_NO_CACHE="1")),
        "ibek generate (pvi)": ([str(ibek), "runtime", "generate", str(quadem),
                                 *map(str, quadem_defs), "-o", str(out / "a-ibek")], env),
        "ibek generate --no-pvi": ([str(ibek), "runtime", "generate", str(quadem),
                                    *map(str, quadem_defs), "-o", str(out / "a-ibek-nopvi"),
                                    "--no-pvi"], env),
    }
    # (b) a big generated IOC
    support = corpus / "ibek-support"
    big_defs = [support / m / f"{m}.ibek.support.yaml" for m in ("ADCore", "asyn", "motor")]
    big = big_ioc(WORK / "big" / "ioc.yaml", args.entities)
    b = {
        "berth generate": (berth + ["generate", str(big), *sum(
            (["--defs", str(d)] for d in big_defs), []), *pvi, "-o", str(out / "b-berth")],
            env),
        "ibek generate (pvi)": ([str(ibek), "runtime", "generate", str(big),
                                 *map(str, big_defs), "-o", str(out / "b-ibek")], env),
        "ibek generate --no-pvi": ([str(ibek), "runtime", "generate", str(big),
                                    *map(str, big_defs), "-o", str(out / "b-ibek-nopvi"),
                                    "--no-pvi"], env),
    }
    # (c) start-up
    c = {
        "berth --help": (berth + ["--help"], env),
        "ibek --help": ([str(ibek), "--help"], env),
        "python -c pass": ([sys.executable, "-c", "pass"], env),
    }

    # (d) the largest real instances: p47, every ibek-support module but the other EPICS base
    every = [str(p) for p in sorted(support.glob("*/*.ibek.support.yaml"))
             if p.parent.name != "_global"]
    p47 = corpus / "services" / "p47-services" / "services"
    d = {}
    for service in P47_LARGEST:
        ioc = str(p47 / service / "config" / "ioc.yaml")
        penv = dict(env, IOC_NAME="TEST_IOC")
        d[f"berth generate {service}"] = (berth + ["generate", ioc, *sum(
            (["--defs", s] for s in every), []), *pvi, "-o", str(out / f"d-berth-{service}")],
            penv)
        d[f"ibek generate (pvi) {service}"] = (
            [str(ibek), "runtime", "generate", ioc, *every, "-o",
             str(out / f"d-ibek-pvi-{service}")], penv)
        d[f"ibek generate --no-pvi {service}"] = (
            [str(ibek), "runtime", "generate", ioc, *every, "-o",
             str(out / f"d-ibek-{service}"), "--no-pvi"], penv)

    print(f"rounds: {args.rounds} for (a), {max(1, args.rounds // 2)} for (b), "
          f"{args.rounds * 2} for (c), interleaved; case (b): {args.entities} entities",
          flush=True)
    results = {}
    if "a" in args.cases:
        results["(a) quadem sample"] = compare("(a)", args.rounds, a)
    if "b" in args.cases:
        results[f"(b) {args.entities} entities"] = compare("(b)", max(1, args.rounds // 2), b,
                                                           warm_up=False)
    if "c" in args.cases:
        results["(c) start-up"] = compare("(c)", args.rounds * 2, c)
    if "d" in args.cases:
        for service in P47_LARGEST:
            pair = {k: v for k, v in d.items() if k.endswith(service)}
            results[f"(d) {service}"] = compare(f"(d) {service}", args.rounds, pair)

    print()
    print("| case | command | median s | min s | ibek / berth (median) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for case, times in results.items():
        berth_key = next(k for k in times if k.startswith("berth"))
        base = statistics.median(times[berth_key])
        for name, values in times.items():
            median = statistics.median(values)
            ratio = f"{median / base:.1f}x" if name.startswith("ibek") else ""
            print(f"| {case} | `{name}` | {median:.3f} | {min(values):.3f} | {ratio} |")
    print()
    for case in "ab":
        if case in args.cases:
            berth_out, ibek_out = out / f"{case}-berth", out / f"{case}-ibek"
            print(f"({case}) outputs of berth and ibek (pvi): {same_outputs(berth_out, ibek_out)}")
    if "d" in args.cases:
        for service in P47_LARGEST:
            same = same_outputs(out / f"d-berth-{service}", REPO / "tests" / "data" / "p47" /
                                service)
            print(f"(d) {service}, berth's outputs and ibek's (pvi, tests/data/p47): {same}")

if __name__ == "__main__":
    main()
