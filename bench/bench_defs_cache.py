"""`berth check` of p47 with the image definitions from berth's cache against the same check
with the support YAMLs given by hand (`--defs`), whole commands, in one run.

    BERTH_CORPUS=../shared/corpus .venv/bin/python bench/bench_defs_cache.py [--rounds 5]

Each Generic IOC image p47 names is made locally (`docker import` of a tar holding the corpus
ibek-support definitions under /epics/ibek-defs) and `berth images pull-defs --no-pull` copies
them into a fresh cache; the `--defs` run gets the very same files as a folder. The cached run
has no engine on PATH (it must not need one). Alternating order each round, round 0 warms
caches; medians. Target: the cache costs at most 10 % more.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml


def defs_files(corpus: Path) -> list[Path]:
    return [p for p in sorted((corpus / "ibek-support").glob("*/*.ibek.support.yaml"))
            if p.parent.name != "_global"]


def image_tar(files: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            tar.add(path, f"epics/ibek-defs/{path.name}")
    return buffer.getvalue()


def p47_images(repo: Path) -> list[str]:
    images = set()
    for values in (repo / "services").glob("*/values.yaml"):
        block = (yaml.safe_load(values.read_text()) or {}).get("ioc-instance") or {}
        image = str(block.get("image") or "")
        if image and image == image.lower():  # (a template service holds a placeholder)
            images.add(image)
    return sorted(images)


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, env=env)  # exit 1: p47 has real problems
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    corpus = Path(os.environ.get("BERTH_CORPUS", "../shared/corpus")).resolve()
    berth = str(Path(sys.executable).parent / "berth")
    docker = shutil.which("docker") or "docker"
    files = defs_files(corpus)
    with tempfile.TemporaryDirectory(prefix="bench-defs-") as tmp:
        work = Path(tmp)
        repo = work / "p47-services"
        shutil.copytree(corpus / "services" / "p47-services", repo)
        by_hand = work / "defs"
        by_hand.mkdir()
        for path in files:
            shutil.copy(path, by_hand / path.name)
        images = p47_images(repo)
        tar = image_tar(files)
        for image in images:
            subprocess.run([docker, "import", "-", image], input=tar, check=True,
                           capture_output=True)
        env = {**os.environ, "BERTH_IMAGE_DEFS_DIR": str(work / "cache")}
        subprocess.run([berth, "images", "pull-defs", "--no-pull", str(repo)], check=True,
                       env=env, capture_output=True)
        no_engine = work / "bin"
        no_engine.mkdir()
        cached_env = {**env, "PATH": str(no_engine)}
        runs = {"cache": ([berth, "check", "-r", str(repo)], cached_env),
                "--defs": ([berth, "check", "-r", str(repo), "--defs", str(by_hand)], env)}
        import json

        for label, (argv, run_env) in runs.items():  # both check the same things
            out = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=run_env)
            steps = {i["name"]: ",".join(i["checked"]) for i in json.loads(out.stdout)["instances"]}
            print(f"{label:<8} {steps}")
        times: dict[str, list[float]] = {label: [] for label in runs}
        try:
            for round_ in range(args.rounds + 1):
                order = list(runs) if round_ % 2 else list(reversed(runs))
                for label in order:
                    seconds = timed(*runs[label])
                    if round_:
                        times[label].append(seconds)
        finally:
            subprocess.run([docker, "rmi", "-f", *images], capture_output=True)
    cache, by = statistics.median(times["cache"]), statistics.median(times["--defs"])
    print(f"p47: {len(images)} images, {len(files)} support files, {args.rounds} rounds")
    print(f"{'check with':<22}{'median s':>10}")
    print(f"{'cached image defs':<22}{cache:>10.3f}")
    print(f"{'--defs by hand':<22}{by:>10.3f}")
    print(f"cache / --defs = {cache / by:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
