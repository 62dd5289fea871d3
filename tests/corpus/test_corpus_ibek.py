"""Compatibility with ibek 4.6 on the epics-containers corpus ($BERTH_CORPUS, skipped when
unset): the 13 expected output sets, the 6 error samples, the real ibek-support definitions and
the p47 instances that use them."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from berth.errors import BerthError
from berth.ioc.generate import GenerateOptions, find_instance_files, generate
from berth.ioc.schema import ioc_schema, support_schema
from berth.ioc.support import load_support
from berth.yamlio import load_yaml

# output set -> (ioc file, support files in order), as the corpus README lists them
OUTPUT_SETS = {
    "motorSim": ("motorSim", ["asyn", "motorSim"]),
    "utils": ("utils", ["utils"]),
    "ipac-test": ("ipac-test", ["ipac", "epics"]),
    "gauges": ("gauges", ["asyn", "gauges"]),
    "quadem": ("quadem", ["ADCore", "quadem"]),
    "quadem_repeat": ("quadem", ["ADCore", "quadem_repeat"]),
    "technosoft": ("technosoft", ["technosoft"]),
    "listarg": ("listarg", ["listarg"]),
    "fastVacuum": ("fastVacuum", ["fastVacuum"]),
    "dlsPLC": ("dlsPLC", ["dlsPLC", "asyn"]),
    "repeat": ("repeat", ["asyn", "epics", "motorSim"]),
    "subentity_test": ("subentity_test", ["subentity_test", "epics"]),
    "wait": ("wait", ["asyn", "motorSim"]),
}

# error sample -> (support files, what every message must contain)
ERROR_SAMPLES = {
    "bad_counter": (["ipac", "epics"], [
        "bad_counter.ibek.ioc.yaml:8:11", "entity 2 (epics.InterruptVectorVME2)", "field 'type'",
        "entity type 'epics.InterruptVectorVME2' is not defined"]),
    "bad_counter2": (["utils"], [
        "bad_counter2.ibek.ioc.yaml:10:5", "entity 3 (epics.InterruptVectorVME2)",
        "field 'env_vars[1]'", "counter 'InterruptVector' ran past its stop value 194"]),
    "bad_ref": (["asyn", "motorSim"], [
        "bad_ref.ibek.ioc.yaml:12:11", "entity 2 (motorSim.simMotorController)", "field 'port'",
        "refers to 'controllerOnePort_BAD_REF', but no entity above has that id",
        "did you mean 'controllerOnePort'"]),
    "bad_db": (["bad_db"], [
        "bad_db.ibek.ioc.yaml:5:5", "entity 1 (object_module.RefObject)",
        "field 'databases[1].args.non-existant'", "database arg 'non-existant' of 'test.db'",
        "bad_db.ibek.support.yaml:23:11"]),
    "bad_default": (["asyn"], [
        "bad_default.ibek.ioc.yaml:8:5", "entity 1 (asyn.AsynIP)", "field 'port'",
        "missing required parameter 'port'"]),
    # ibek reports the template error this causes further down (`card.cardid`); the cause is
    # a parameter the carrier card does not have
    "DLS8515": (["DLS8515", "ipac", "epics"], [
        "DLS8515.ibek.ioc.yaml:14:5", "entity 3 (ipac.Hy8002)", "field 'interrupt_vector'",
        "unknown parameter 'interrupt_vector' for ipac.Hy8002"]),
}


@pytest.fixture(scope="module")
def ibek(corpus: Path) -> Path:
    return corpus / "ibek"


@pytest.fixture(scope="module")
def options(ibek: Path) -> GenerateOptions:
    return GenerateOptions(ioc_dir="/epics/ioc", runtime_dir="/epics/runtime",
                           ioc_name="TEST_IOC",
                           pvi_defs=[ibek / "epics" / "pvi-defs", ibek / "support"])


def support_files(ibek: Path, names: list[str]) -> list[Path]:
    return [ibek / "support" / f"{n}.ibek.support.yaml" for n in names]


@pytest.mark.parametrize("name", list(OUTPUT_SETS))
def test_output_set(ibek, options, name):
    ioc, supports = OUTPUT_SETS[name]
    out = generate([ibek / "iocs" / f"{ioc}.ibek.ioc.yaml"], support_files(ibek, supports),
                   options)
    expected = ibek / "outputs" / name
    assert out.st_cmd.strip() == (expected / "st.cmd").read_text().strip()
    assert out.ioc_subst.strip() == (expected / "ioc.subst").read_text().strip()
    wait = expected / "wait_list.yaml"
    if wait.exists():
        assert out.wait_list is not None
        assert out.wait_list.strip() == wait.read_text().strip()
    else:
        assert out.wait_list is None
    assert out.warnings == []


@pytest.mark.parametrize("name", list(ERROR_SAMPLES))
def test_error_sample(ibek, options, name):
    supports, needles = ERROR_SAMPLES[name]
    with pytest.raises(BerthError) as info:
        generate([ibek / "iocs" / f"{name}.ibek.ioc.yaml"], support_files(ibek, supports),
                 options)
    first = str(info.value.problems[0])
    for needle in needles:
        assert needle in first, first


@pytest.mark.parametrize("name", [n for n in OUTPUT_SETS if n != "quadem_repeat"])
def test_schema_accepts_sample(ibek, name):
    ioc, supports = OUTPUT_SETS[name]
    validator = jsonschema.Draft202012Validator(ioc_schema(support_files(ibek, supports)))
    errors = [e.message for e in validator.iter_errors(
        load_yaml(ibek / "iocs" / f"{ioc}.ibek.ioc.yaml"))]
    assert errors == []


# error sample -> (the path of the value the schema rejects, the start of its one message)
SCHEMA_REJECTS = {
    "bad_counter": (["entities", 1, "type"], "'epics.InterruptVectorVME2' is not one of ["),
    "bad_default": (["entities", 0], "'port' is a required property"),
    "DLS8515": (["entities", 2],
                "Additional properties are not allowed ('interrupt_vector' was unexpected)"),
}


@pytest.mark.parametrize("name", list(SCHEMA_REJECTS))
def test_schema_rejects_sample(ibek, name):
    validator = jsonschema.Draft202012Validator(
        ioc_schema(support_files(ibek, ERROR_SAMPLES[name][0])))
    path, message = SCHEMA_REJECTS[name]
    [error] = validator.iter_errors(load_yaml(ibek / "iocs" / f"{name}.ibek.ioc.yaml"))
    assert list(error.absolute_path) == path
    assert error.message.startswith(message), error.message


def test_support_files_validate_against_support_schema(corpus, ibek):
    validator = jsonschema.Draft202012Validator(support_schema())
    files = sorted((ibek / "support").glob("*.ibek.support.yaml"))
    files += sorted((corpus / "ibek-support").glob("*/*.ibek.support.yaml"))
    assert len(files) > 20
    for path in files:
        assert [e.message for e in validator.iter_errors(load_yaml(path))] == [], path


# -- ibek-support and p47 ---------------------------------------------------------------------

def ibek_support(corpus: Path, base: str) -> list[Path]:
    """Every module folder, with one of the two EPICS base variants."""
    other = "_global" if base == "_ansible" else "_ansible"
    return [p for p in sorted((corpus / "ibek-support").glob("*/*.ibek.support.yaml"))
            if p.parent.name != other]


def test_ibek_support_loads(corpus):
    everything = load_support(ibek_support(corpus, "_ansible"))
    assert len(everything.models) > 80
    assert {"ADCore.NDStats", "asyn.AsynIP", "epics.DbLine", "motorSim.simMotorAxis"} <= \
        set(everything.models)
    base = load_support([corpus / "ibek-support" / "_global" / "epics.ibek.support.yaml"])
    assert len(base.models) == 8


@pytest.fixture(scope="module")
def p47_options(corpus: Path) -> GenerateOptions:
    folders = [p for p in sorted((corpus / "ibek-support").iterdir()) if p.is_dir()]
    return GenerateOptions(ioc_name="TEST_IOC", pvi_defs=folders)


P47_IBEK = Path(__file__).parents[1] / "data" / "p47"  # what ibek 4.6.2 writes (its README)


def p47_config(corpus: Path, service: str) -> Path:
    return corpus / "services" / "p47-services" / "services" / service / "config"


@pytest.mark.parametrize("service", ["bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01"])
def test_p47_instances_generate_what_ibek_does(corpus, p47_options, service):
    options = GenerateOptions(ioc_name="TEST_IOC",
                              pvi_defs=[P47_IBEK / "site-pvi", *p47_options.pvi_defs])
    out = generate(find_instance_files(p47_config(corpus, service)),
                   ibek_support(corpus, "_ansible"), options)
    expected = P47_IBEK / service
    assert out.st_cmd.strip() == (expected / "st.cmd").read_text().strip()
    assert out.ioc_subst.strip() == (expected / "ioc.subst").read_text().strip()
    wait = expected / "wait_list.yaml"
    assert (out.wait_list or "").strip() == (wait.read_text().strip() if wait.exists() else "")
    assert out.warnings == []


def test_p47_missing_site_pvi_file_is_a_warning_that_leaves_its_row_out(corpus, p47_options):
    out = generate(find_instance_files(p47_config(corpus, "bl47p-ea-dcam-01")),
                   ibek_support(corpus, "_ansible"), p47_options)
    [warning] = out.warnings
    assert warning.severity == "warning"
    assert "entity 5 (ADAravis.aravisSettings)" in str(warning)
    assert "PVI device file 'ADAravis-BL47P-EA-DET-01.pvi.device.yaml' not found" in str(warning)
    assert "ADAravis-BL47P-EA-DET-01.pvi.template" not in out.ioc_subst
    with_site = (P47_IBEK / "bl47p-ea-dcam-01" / "ioc.subst").read_text()
    assert "ADAravis-BL47P-EA-DET-01.pvi.template" in with_site
    assert out.st_cmd.strip() == (P47_IBEK / "bl47p-ea-dcam-01" / "st.cmd").read_text().strip()


def test_p47_instance_with_missing_modules_fails_with_one_error(corpus, p47_options):
    config = corpus / "services" / "p47-services" / "services" / "sr03c-va-ioc-01" / "config"
    with pytest.raises(BerthError) as info:
        generate(find_instance_files(config), ibek_support(corpus, "_ansible"), p47_options)
    [problem] = info.value.problems
    text = str(problem)
    assert "ioc.yaml:87:11" in text
    assert "22 entity types are not defined by the support definitions" in text
    for type_name in ("FINS.FINSUDPInit", "ether_ip.EtherIPInit", "SR-VA.common",
                      "digitelMpc.digitelMpcIonp", "rga.rgaGroup", "mks937a.mks937aImgMean",
                      "vacuumSpace.spaceTemplate", "dlsPLC.NX102_readBool"):
        assert type_name in text
