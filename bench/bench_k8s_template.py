"""`berth template -b k8s` of every renderable p47 service against plain `helm template` of the
same folders (their pinned packages placed in charts/ by hand), in one run.

    BERTH_CORPUS=../shared/corpus .venv/bin/python bench/bench_k8s_template.py [--rounds 5]

berth, in one command for all the services (`berth template -b k8s a,b,c…`, its helm calls run
several at once), resolves each dependency through a chart mirror (the corpus charts packaged at
5.5.0) into a temporary copy of the folder; helm renders folders prepared beforehand, one
command per service. Whole commands, alternating which goes first each round; medians. Target:
berth <= 1.3x helm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SERVICES = ["bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01", "sr03c-va-ioc-01",
            "bl47p-ea-fastcs-01", "bl47p-ea-panda-01", "bl47p-synoptic", "p47-epics-opis",
            "p47-epics-pvcs"]
EC_CHARTS = "oci://ghcr.io/epics-containers/charts"


def prepare(corpus: Path, work: Path) -> tuple[Path, Path, Path]:
    mirror = work / "mirror"
    for chart in (corpus / "charts" / "ec-helm-charts-5.5.0" / "Charts").iterdir():
        subprocess.run(["helm", "package", str(chart), "--version", "5.5.0", "-d", str(mirror)],
                       check=True, capture_output=True)
    repo = work / "p47-services"
    shutil.copytree(corpus / "services" / "p47-services", repo)
    for path in sorted(repo.rglob("*")):  # the corpus stores links as text: links again
        path.chmod(path.stat().st_mode | 0o200)
        if path.is_file() and path.stat().st_size < 200:
            target = path.read_text().strip()
            if target.startswith("../") and (path.parent / target).exists():
                path.unlink()
                path.symlink_to(target)
    reference = work / "reference"
    shutil.copytree(repo, reference, symlinks=True)
    for name in SERVICES:
        charts = reference / "services" / name / "charts"
        charts.mkdir()
        meta = yaml.safe_load((reference / "services" / name / "Chart.yaml").read_text())
        for dep in meta.get("dependencies") or []:
            shutil.copy(mirror / f"{dep['name']}-{dep['version']}.tgz", charts)
    return mirror, repo, reference


def timed(commands: list[list[str]], env: dict[str, str]) -> float:
    start = time.perf_counter()
    for argv in commands:
        subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    corpus = Path(os.environ.get("BERTH_CORPUS", "../shared/corpus")).resolve()
    berth = str(Path(sys.executable).parent / "berth")
    with tempfile.TemporaryDirectory(prefix="bench-k8s-") as tmp:
        mirror, repo, reference = prepare(corpus, Path(tmp))
        env = {**os.environ, "BERTH_CHART_MIRROR": f"{EC_CHARTS}={mirror}"}
        ours = [[berth, "template", "-b", "k8s", "-r", str(repo), ",".join(SERVICES)]]
        theirs = [["helm", "template", name, str(reference / "services" / name),
                   "-f", str(reference / "services" / "values.yaml"),
                   "-f", str(reference / "services" / name / "values.yaml")]
                  for name in SERVICES]
        times: dict[str, list[float]] = {"berth": [], "helm": []}
        for round_ in range(args.rounds + 1):  # round 0 warms caches
            order = [("berth", ours), ("helm", theirs)]
            for label, commands in order if round_ % 2 else reversed(order):
                seconds = timed(commands, env)
                if round_:
                    times[label].append(seconds)
    berth_s, helm_s = (statistics.median(times[k]) for k in ("berth", "helm"))
    load = os.getloadavg()[0]
    print(f"{len(SERVICES)} services, median of {args.rounds} rounds, load {load:.1f}")
    print(f"berth template -b k8s  {berth_s:7.3f} s  ({berth_s / len(SERVICES):.3f} s each)")
    print(f"helm template          {helm_s:7.3f} s  ({helm_s / len(SERVICES):.3f} s each)")
    print(f"ratio berth/helm       {berth_s / helm_s:7.2f}x  (target <= 1.3x)")


if __name__ == "__main__":
    main()
