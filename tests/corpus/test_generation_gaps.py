"""Divergences from ibek 4.6.2 found on real instances (issue 14, item 3), each pinned on the real
ibek-support files of the corpus ($BERTH_CORPUS, skipped when unset). Expected outputs under
ibek_4.6.2/ were made by ibek 4.6.2 itself (see ibek_4.6.2/README.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from berth.errors import BerthError
from berth.ioc.generate import GenerateOptions, generate, write_outputs
from conftest import run_berth

IBEK_OUT = Path(__file__).parent / "ibek_4.6.2"
DUMP = Path(__file__).parents[1] / "epics_dump.py"
OPTIONS = GenerateOptions(ioc_dir="/epics/ioc", runtime_dir="/epics/runtime",
                          ioc_name="TEST_IOC")


def support(corpus: Path, *modules: str) -> list[Path]:
    return [corpus / "ibek-support" / m / f"{m}.ibek.support.yaml" for m in modules]


def write_ioc(folder: Path, entities: str, top: str = "") -> Path:
    path = folder / "ioc.yaml"
    path.write_text(f'ioc_name: "{{{{ _global.get_env(\'IOC_NAME\') }}}}"\n{top}'
                    f"entities:\n{entities}")
    return path


def epics_load(*args: str | Path, cwd: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(DUMP), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- ADCore.NDAttributes: a parameter named `type` --------------------------------------------

def test_ndattributes_instance_generates_as_ibek_does(corpus: Path) -> None:
    case = IBEK_OUT / "ndattributes"
    out = generate([case / "ndattr.ibek.ioc.yaml"],
                   support(corpus, "ADCore", "ADSimDetector"), OPTIONS, beside=False)
    assert out.st_cmd.strip() == (case / "st.cmd").read_text().strip()
    assert out.ioc_subst.strip() == (case / "ioc.subst").read_text().strip()
    attrs = [e for e in out.entities if e.type == "ADCore.NDAttributes"]
    assert [e.fields["type"] for e in attrs] == ["ADCore.NDAttributes"] * 2
    assert attrs[0].fields["dbrtype"] == "DBR_NATIVE"  # the other parameters are still there


def test_ndattributes_schema_accepts_the_instance(corpus: Path) -> None:
    import jsonschema

    from berth.ioc.schema import ioc_schema
    from berth.yamlio import load_yaml

    schema = ioc_schema(support(corpus, "ADCore", "ADSimDetector"))
    validator = jsonschema.Draft202012Validator(schema)
    doc = load_yaml(IBEK_OUT / "ndattributes" / "ndattr.ibek.ioc.yaml")
    assert [e.message for e in validator.iter_errors(doc)] == []
    doc["entities"][1]["type"] = "PARAM"  # the parameter ibek drops cannot be given
    assert list(validator.iter_errors(doc))


# -- one template, two argument lists ---------------------------------------------------------

AUTOSAVE_PAIR = """\
  - type: autosave.Autosave
    P: "BL01T-EA-IOC-01:"
  - type: autosave.auto_save_restoreStatus
    P: "BL01T-EA-IOC-01:AS:"
"""

# a stand-in for autosave's save_restoreStatus.db (the module's db folder is not in the corpus)
STATUS_DB = 'record(stringin, "$(P)STATUS") {\n    field(DESC, "$(P)")\n}\n'


def test_two_argument_lists_of_one_template_load_in_epics(corpus: Path, tmp_path: Path
                                                          ) -> None:
    ioc = write_ioc(tmp_path, AUTOSAVE_PAIR)
    out = generate([ioc], support(corpus, "autosave"), OPTIONS, beside=False)
    blocks = out.ioc_subst.count('file "save_restoreStatus.db" {')
    assert blocks == 2, out.ioc_subst
    run = tmp_path / "runtime"
    write_outputs(out, run)
    (run / "save_restoreStatus.db").write_text(STATUS_DB)
    # the Generic IOC's way: msi (berth expand) makes ioc.db, which EPICS loads
    done = run_berth("expand", "-S", run / "ioc.subst", "-I", run, "-V", "-o", run / "ioc.db")
    assert done.returncode == 0, done.stderr
    loaded = epics_load("--db", run / "ioc.db", cwd=run)
    both = {"BL01T-EA-IOC-01:STATUS", "BL01T-EA-IOC-01:AS:STATUS"}
    assert set(loaded["records"]) == both
    assert loaded["records"]["BL01T-EA-IOC-01:AS:STATUS"]["fields"]["DESC"] == \
        "BL01T-EA-IOC-01:AS:"
    # EPICS's own dbLoadTemplate reads the blocks too; it takes pattern names only unquoted
    # (base 7.0.10 refuses ibek's `{ "P" }` header in every ioc.subst), so they are unquoted
    plain = tmp_path / "plain.subst"
    plain.write_text(re.sub(r'pattern \n\t\{([^}]*)\}',
                            lambda m: "pattern\n\t{" + m[1].replace('"', "") + "}",
                            out.ioc_subst))
    assert re.search(r"pattern\n\t\{ type, +entity_enabled, +P +\}", plain.read_text())
    loaded = epics_load("--subst", plain, "-I", run, cwd=run)
    assert set(loaded["records"]) == both


def test_rows_of_one_argument_list_share_one_block(corpus: Path, tmp_path: Path) -> None:
    ioc = write_ioc(tmp_path, AUTOSAVE_PAIR + AUTOSAVE_PAIR.split("  - type: autosave.auto")[0]
                    .replace("autosave.Autosave", "autosave.auto_save_restoreStatus")
                    .replace("IOC-01:", "IOC-02:"))
    out = generate([ioc], support(corpus, "autosave"), OPTIONS, beside=False)
    assert out.ioc_subst.count('file "save_restoreStatus.db" {') == 2
    assert "BL01T-EA-IOC-02:" in out.ioc_subst.split("file ")[-1]  # joined the second block


# -- an unknown top-level key ------------------------------------------------------------------

def test_unknown_top_level_key_reported_with_the_entity_errors(corpus: Path, tmp_path: Path
                                                               ) -> None:
    ioc = write_ioc(tmp_path, "  - type: autosave.Autosave\n    P: 1\n    debugg: true\n",
                    top="descripton: typo\n")
    with pytest.raises(BerthError) as info:
        generate([ioc], support(corpus, "autosave"), OPTIONS, beside=False)
    text = [str(p) for p in info.value.problems]
    assert any("unknown key 'descripton'" in t and "ioc.yaml:2:1" in t for t in text), text
    assert any("field 'P'" in t and "ioc.yaml:5:8" in t for t in text), text
    assert any("unknown parameter 'debugg'" in t for t in text), text


# -- IOC / RUNTIME_DIR set to the empty string -------------------------------------------------

def test_empty_ioc_and_runtime_dir_are_honoured(corpus: Path, tmp_path: Path) -> None:
    ioc = write_ioc(tmp_path, AUTOSAVE_PAIR)
    options = GenerateOptions.from_env({"IOC": "", "RUNTIME_DIR": "", "IOC_NAME": "X"})
    out = generate([ioc], support(corpus, "autosave"), options, beside=False)
    assert 'cd ""\n' in out.st_cmd  # as ibek's get_env('IOC') writes it
    assert "dbLoadRecords /ioc.db\n" in out.st_cmd
    unset = GenerateOptions.from_env({"IOC_NAME": "X"})
    assert (unset.ioc_dir, unset.runtime_dir) == ("/epics/ioc", "/epics/runtime")


# -- .pvi.template: pvi's merge of included devices --------------------------------------------

_RECORD = re.compile(r'record\("[^"]*", "([^"]*)"\) \{\s*info\(Q:group, \{\s*"[^"]*": \{'
                     r'(.*?)\n    \}\)', re.S)
_FIELD = re.compile(r'"(pvi\.[^"]+)": \{')


def record_fields(text: str) -> set[tuple[str, str]]:
    """(record, PVI field) pairs of a .pvi.template (ibek repeats some; a set is the
    comparison)."""
    return {(m[1], f) for m in _RECORD.finditer(text) for f in _FIELD.findall(m[2])}


@pytest.mark.parametrize(("device", "module"), [("simDetector", "ADSimDetector"),
                                                ("NDROIStat", "ADCore")])
def test_pvi_template_fields_equal_ibeks(corpus: Path, device: str, module: str) -> None:
    """ibek_4.6.2/pvi/: ibek's templates for pvi/sim.ibek.ioc.yaml. simDetector's five
    Manufacturer/Model/... readbacks are hidden by NDArrayBase's IgnoredComponents;
    NDROIStat keeps its Reset group's ResetAll."""
    from berth.screens import load_device, render_pvi_template

    search = sorted({p.parent for p in (corpus / "ibek-support").glob("*/*.pvi.device.yaml")})
    loaded = load_device(corpus / "ibek-support" / module / f"{device}.pvi.device.yaml",
                         search)
    ours = record_fields(render_pvi_template(loaded, "$(P)$(R)", "pvi"))
    theirs = record_fields((IBEK_OUT / "pvi" / f"{device}.pvi.template").read_text())
    assert len(theirs) > 150
    assert ours == theirs


# -- the screen set of an areaDetector instance -----------------------------------------------

_FILE = re.compile(r"<file>([^<]*)</file>")


def _links(text: str) -> set[str]:
    """The screens a .bob opens or embeds."""
    return set(_FILE.findall(text))


def _berth_screens(corpus: Path, instance: Path, out: Path, stand_in: str = "") -> Path:
    defs = support(corpus, "ADCore", "ADSimDetector", "ADAravis")
    pvi_defs = sorted({p.parent for p in (corpus / "ibek-support").glob("*/*.pvi.device.yaml")})
    if stand_in:  # a device file made from the camera at build time: ADAravis's, renamed
        folder = out / "camera-pvi"
        folder.mkdir()
        shutil.copy(corpus / "ibek-support/ADAravis/ADAravis.pvi.device.yaml",
                    folder / f"{stand_in}.pvi.device.yaml")
        pvi_defs.insert(0, folder)
    args: list[str | Path] = ["generate", instance, "-o", out, "--ioc-name", "TEST_IOC"]
    for path in defs:
        args += ["--defs", path]
    for folder in pvi_defs:
        args += ["--pvi-defs", folder]
    done = run_berth(*args, env={"BERTH_NO_CACHE": "1"})
    assert done.returncode == 0, done.stderr
    return out / "opi"


@pytest.mark.parametrize(("sample", "stand_in"), [("sim", ""), ("cam01", ""),
                                                  ("dcam01", "ADAravis-BL47P-EA-DET-01")])
def test_screen_set_equals_ibeks(corpus: Path, tmp_path: Path, sample: str, stand_in: str
                                 ) -> None:
    """ibek_4.6.2/pvi/opi/: what ibek (pvi) writes for the instance: a screen per `SubScreen`
    group at any depth and per plot not alone on its screen, named `<parent>_<name>.pvi.bob`
    (60 screens for a full areaDetector IOC where berth once wrote 29)."""
    case = IBEK_OUT / "pvi"
    opi = _berth_screens(corpus, case / f"{sample}.ibek.ioc.yaml", tmp_path, stand_in)
    ours = {p.name for p in opi.iterdir()}
    if sample == "sim":
        theirs = {p.name for p in (case / "opi" / "sim").iterdir()}
    else:
        theirs = set((case / "opi" / f"{sample}.files").read_text().split())
    assert len(theirs) > 8
    assert ours == theirs
    dangling = {(name, link) for name in ours for link in _links((opi / name).read_text())
                if not (opi / link).is_file()}
    assert not dangling
    if sample == "sim":  # every screen opens the same screens as ibek's
        for name in theirs:
            assert _links((opi / name).read_text()) == \
                _links((case / "opi" / "sim" / name).read_text()), name
