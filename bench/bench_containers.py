"""Containers bench (not run in CI): image build time, runtime image size, and the time from
`docker run` to the first CA answer, next to the same IOC started by `berth run` on the host.

    .venv/bin/python bench/bench_containers.py [--repeat 5] [--cold]

`--cold` removes the cached base image first, so the build includes debootstrap. The machine is
shared and noisy: the two start-up times are measured alternately in one run, compare the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"EPICS_CA_ADDR_LIST": "127.255.255.255", "EPICS_CA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_ADDR_LIST": "127.0.0.1", "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
            "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO", "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1"}


def berth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "berth", *args], capture_output=True, text=True,
                          cwd=ROOT)


def config_folder(base: Path, prefix: str, records: int = 100) -> Path:
    """A 100-record soft IOC from a hand-written st.cmd (the shape machine.md measured)."""
    config = base / "config"
    config.mkdir(parents=True)
    (config / "records.db").write_text("".join(
        f'record(ao, "$(P)AO{i}") {{\n  field(VAL, "{i}")\n}}\n' for i in range(records)))
    (config / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        f'dbLoadRecords records.db "P={prefix}:"\niocInit\n')
    return config


def first_answer(pv: str, started: float, timeout: float = 30.0) -> float:
    from caproto.sync.client import read

    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            read(pv, timeout=0.1, repeater=False)
            return time.monotonic() - started
        except Exception:
            continue
    raise TimeoutError(pv)


def in_container(engine: str, image: str, config: Path, prefix: str) -> float:
    name = f"bench-{prefix.lower()}"
    started = time.monotonic()
    subprocess.run([engine, "run", "-d", "--rm", "--name", name, "--network", "host",
                    "-v", f"{config}:/epics/ioc/config:ro", image], check=True,
                   capture_output=True)
    try:
        return first_answer(f"{prefix}:AO0", started)
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True)


def on_host(config: Path, work: Path, prefix: str) -> float:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "berth", "run", str(config), "--runtime-dir", str(work),
         "--ioc-name", prefix.lower()], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        return first_answer(f"{prefix}:AO0", started)
    finally:
        process.terminate()
        process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="rebuild the base image too")
    args = parser.parse_args()
    os.environ.update(LOOPBACK)
    from berth.tools.engine import detect

    engine = detect()
    if args.cold:
        subprocess.run([engine.binary, "rmi", "-f", "berth-base:bookworm"], capture_output=True)
    build = berth("image", "build", "--force", "--json")
    if build.returncode != 0:
        print(build.stderr, file=sys.stderr)
        return 1
    report = json.loads(build.stdout)
    image = report["tags"][0]
    print(f"image build: {report['timings']['total']:.1f} s "
          f"(base {report['timings']['base']:.1f} s{' built' if report['base_built'] else ''}, "
          f"wheels {report['timings']['wheels']:.1f} s, build {report['timings']['build']:.1f} s)")
    print(f"runtime image size: {report['size_bytes'] / 1e6:.0f} MB (target <= 300 MB)")
    container, host = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            prefix = f"BENCH{uuid.uuid4().hex[:6].upper()}"
            config = config_folder(Path(tmp) / f"c{i}", prefix)
            container.append(in_container(engine.binary, image, config, prefix))
            host_prefix = f"BENCH{uuid.uuid4().hex[:6].upper()}"
            host_config = config_folder(Path(tmp) / f"h{i}", host_prefix)
            host.append(on_host(host_config, Path(tmp) / f"h{i}" / "runtime", host_prefix))
    c, h = statistics.median(container), statistics.median(host)
    print(f"start to first CA answer, median of {args.repeat}: container {c:.2f} s "
          f"(target <= 1.5 s), host berth run {h:.2f} s, ratio {c / h:.2f}")
    print(f"  container runs: {', '.join(f'{x:.2f}' for x in container)}")
    print(f"  host runs:      {', '.join(f'{x:.2f}' for x in host)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
