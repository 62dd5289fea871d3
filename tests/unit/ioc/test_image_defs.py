"""Definitions from the image: a Generic IOC image made in the test (`docker import` of a tar
holding the corpus ibek-support definitions under /epics/ibek-defs, plus one module of ours
with its template and a dbd) lets `berth check` of a repository naming it validate its
instances; the second run uses the cache and no engine at all."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.tools.engine import Engine
from conftest import run_berth
from containers import engine_fixture  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(600)

OUR_SUPPORT = """\
module: berthtest
entity_models:
  - name: Thing
    description: one analog output
    parameters:
      P:
        type: str
        description: PV prefix
    databases:
      - file: berthtest.template
        args:
          P:
"""
TEMPLATE = 'record(ao, "$(P)VALUE") {\n  field(VAL, "1")\n}\n'


def image_tar(corpus: Path) -> bytes:
    """The file system of a Generic IOC image, as the layout /epics has in ec's images."""
    import epicscorelibs.path

    files: dict[str, bytes] = {}
    for path in sorted((corpus / "ibek-support").glob("*/*.ibek.support.yaml")):
        if path.parent.name != "_global":  # one variant of the epics module
            files[f"epics/ibek-defs/{path.name}"] = path.read_bytes()
    files["epics/ibek-defs/berthtest.ibek.support.yaml"] = OUR_SUPPORT.encode()
    files["epics/support/berthtest/db/berthtest.template"] = TEMPLATE.encode()
    files["epics/support/berthtest/lib/libberthtest.so"] = b"not copied out"
    for dbd in Path(epicscorelibs.path.base_path, "dbd").glob("*.dbd"):
        files[f"epics/ioc/dbd/{dbd.name}"] = dbd.read_bytes()
    files["epics/ioc/dbd/ioc.dbd"] = b'include "base.dbd"\n'
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def generic_image(engine: Engine, corpus: Path) -> Iterator[str]:
    tag = f"berth-test/ioc-defs-{uuid.uuid4().hex[:8]}:2026.1.1"
    result = subprocess.run(engine.argv("import", "-", tag), input=image_tar(corpus),
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    yield tag
    subprocess.run(engine.argv("rmi", "-f", tag), capture_output=True)


def service(repo: Path, name: str, image: str, ioc_yaml: str) -> Path:
    folder = repo / "services" / name
    (folder / "config").mkdir(parents=True)
    (folder / "values.yaml").write_text(f"ioc-instance:\n  image: {image}\n")
    path = folder / "config" / "ioc.yaml"
    path.write_text(ioc_yaml)
    return path


def instance(name: str, *prefixes: str) -> str:
    entities = "".join(f"  - type: berthtest.Thing\n    P: '{p}'\n" for p in prefixes)
    return f"ioc_name: {name}\ndescription: test\nentities:\n{entities}"


@pytest.fixture
def repo(tmp_path: Path, generic_image: str) -> Path:
    root = tmp_path / "repo"
    (root / "services").mkdir(parents=True)
    (root / "services" / "values.yaml").write_text("global:\n  domain: bl01t\n")
    service(root, "bl01t-ea-ioc-01", generic_image, instance("bl01t-ea-ioc-01", "T1:A:", "T1:"))
    service(root, "bl01t-ea-ioc-02", generic_image, instance("bl01t-ea-ioc-02", "T1:B:", "T1:"))
    service(root, "bl01t-ea-ioc-03", generic_image,
            "ioc_name: bl01t-ea-ioc-03\ndescription: test\nentities:\n"
            "  - type: berthtest.Thing\n    P: 'T3:'\n"
            "  - type: berthtest.NoSuchThing\n    P: 'T3:X:'\n")
    return root


def check(repo: Path, cache: Path, path: str | None = None) -> dict:
    env = {"BERTH_IMAGE_DEFS_DIR": str(cache)}
    if path is not None:
        env["PATH"] = path
    result = run_berth("check", "-r", repo, "--json", env=env, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def assert_checked(report: dict, repo: Path) -> None:
    by_name = {i["name"]: i for i in report["instances"]}
    for name in ("bl01t-ea-ioc-01", "bl01t-ea-ioc-02"):
        assert by_name[name]["checked"] == ["schema", "generate", "epics"], report
        assert by_name[name]["pvs"] == 2
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    unknown = [p for p in errors if "NoSuchThing" in p["message"]]
    third = repo / "services" / "bl01t-ea-ioc-03" / "config" / "ioc.yaml"
    assert [(p["file"], p["line"]) for p in unknown] == [(str(third), 6)], errors
    duplicate = [p for p in errors if "T1:VALUE" in p["message"]]
    assert len(duplicate) == 1, errors
    assert duplicate[0]["file"].endswith("bl01t-ea-ioc-02/config/ioc.yaml")
    assert duplicate[0]["line"] == 7  # its P: 'T1:'
    assert "bl01t-ea-ioc-01" in duplicate[0]["message"]
    assert not [p for p in report["problems"] if "not on this host" in p["message"]]


def test_check_uses_the_image_then_the_cache_without_an_engine(
        repo: Path, tmp_path: Path, generic_image: str) -> None:
    cache = tmp_path / "cache"
    assert_checked(check(repo, cache), repo)
    # copied out: the definitions, templates and dbd; not the rest of the image
    (copy,) = [p for p in cache.iterdir() if p.name.startswith("sha256-")]
    assert (copy / "ibek-defs" / "berthtest.ibek.support.yaml").is_file()
    assert (copy / "support" / "berthtest" / "db" / "berthtest.template").is_file()
    assert not (copy / "support" / "berthtest" / "lib").exists()
    assert cache.stat().st_mode & 0o077 == 0, "the cache is private"
    # second run: no engine on PATH at all, same findings
    no_engine = tmp_path / "bin"
    no_engine.mkdir()
    assert_checked(check(repo, cache, str(no_engine)), repo)


def test_without_cache_or_engine_the_note_names_the_image(
        repo: Path, tmp_path: Path, generic_image: str) -> None:
    no_engine = tmp_path / "bin"
    no_engine.mkdir()
    report = check(repo, tmp_path / "empty-cache", str(no_engine))
    notes = [p["message"] for p in report["problems"] if p["severity"] == "note"
             and "not on this host" in p["message"]]
    assert len(notes) == 3, report["problems"]
    assert all(f"docker pull {generic_image}" in n for n in notes)


def test_pull_defs_fills_the_cache_for_every_image(repo: Path, tmp_path: Path,
                                                   generic_image: str) -> None:
    cache = tmp_path / "cache"
    result = run_berth("images", "pull-defs", repo, env={"BERTH_IMAGE_DEFS_DIR": str(cache)},
                       timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"[1/1] {generic_image}" in result.stdout
    no_engine = tmp_path / "bin"
    no_engine.mkdir()
    assert_checked(check(repo, cache, str(no_engine)), repo)


def test_given_defs_come_first(repo: Path, tmp_path: Path, corpus: Path) -> None:
    ours = tmp_path / "berthtest.ibek.support.yaml"
    ours.write_text(OUR_SUPPORT)
    env = {"BERTH_IMAGE_DEFS_DIR": str(tmp_path / "cache"), "PATH": str(tmp_path)}
    result = run_berth("check", "-r", repo, "--json", "--defs", ours, env=env, timeout=300)
    report = json.loads(result.stdout)
    by_name = {i["name"]: i for i in report["instances"]}
    # with --defs the image is not looked at: generated, but no templates to expand
    assert by_name["bl01t-ea-ioc-01"]["checked"] == ["schema", "generate"]
    assert not (tmp_path / "cache").exists()
    assert os.environ.get("PATH") and sys.executable


def test_schema_and_generate_take_the_image(repo: Path, tmp_path: Path,
                                            generic_image: str) -> None:
    env = {"BERTH_IMAGE_DEFS_DIR": str(tmp_path / "cache")}
    schema = run_berth("schema", "--image", generic_image, env=env, timeout=120)
    assert schema.returncode == 0, schema.stderr
    assert "berthtest.Thing" in schema.stdout and "asyn.AsynIP" in schema.stdout
    no_engine = tmp_path / "bin"
    no_engine.mkdir()
    config = repo / "services" / "bl01t-ea-ioc-01" / "config"
    out = tmp_path / "out"
    generated = run_berth("generate", config, "--image", generic_image, "-o", out,
                          env={**env, "PATH": str(no_engine)}, timeout=120)  # from the cache
    assert generated.returncode == 0, generated.stderr
    assert "berthtest.template" in (out / "ioc.subst").read_text()
    missing = run_berth("generate", config, "--image", generic_image, "-o", out,
                        env={"BERTH_IMAGE_DEFS_DIR": str(tmp_path / "none"),
                             "PATH": str(no_engine)}, timeout=120)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"docker pull {generic_image}" in missing.stderr
