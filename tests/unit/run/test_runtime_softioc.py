"""The built-in soft Generic IOC's support definitions (src/berth/assets/softioc)."""

from __future__ import annotations

from pathlib import Path

import yaml

from berth import paths as softioc


def models(path: Path) -> dict[str, dict[str, tuple[str, object]]]:
    data = yaml.safe_load(path.read_text())
    return {m["name"]: {name: (p["type"], p.get("default", "<required>"))
                        for name, p in (m.get("parameters") or {}).items()}
            for m in data["entity_models"]}


def test_the_epics_module_matches_the_epics_containers_base_set(corpus: Path):
    ours = softioc.ASSETS / "support" / "epics.ibek.support.yaml"
    theirs = corpus / "ibek-support" / "_ansible" / "epics.ibek.support.yaml"
    assert yaml.safe_load(ours.read_text())["module"] == "epics"
    assert models(ours) == models(theirs), "same 11 models, same parameters, types, defaults"
    assert len(models(ours)) == 11


def test_the_soft_ioc_folder_and_templates_are_there():
    assert (softioc.ioc_dir() / "dbd" / "ioc.dbd").read_text().count("include") >= 2
    assert "$(line)" in (softioc.db_dir() / "any.template").read_text()
    alias = (softioc.db_dir() / "alias.template").read_text()
    assert 'alias("$(name)", "$(alias)")' in alias
    names = {p.name for p in softioc.support_files()}
    assert names == {"epics.ibek.support.yaml", "berth.ibek.support.yaml",
                     "autosave.ibek.support.yaml", "devIocStats.ibek.support.yaml"}
    berth_models = models(softioc.ASSETS / "support" / "berth.ibek.support.yaml")
    assert berth_models["Template"] == {"file": ("str", "<required>"), "macros": ("dict", {})}
    assert berth_models["Templates"] == {"templates": ("list", "<required>")}
