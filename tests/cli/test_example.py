"""The example beamline examples/bl01b is a valid services repository of soft IOCs (the end-to-end
run of it is in test_local.py)."""

from __future__ import annotations

import re

import yaml
from test_local import CA_PVS, EXAMPLE

from berth.deploy.services import ServicesRepo
from berth.run.ioc_map import EMBEDDED_IMAGES, how_to_run, image_name


def test_example_has_seven_soft_iocs_of_the_embedded_image() -> None:
    repo = ServicesRepo.load(EXAMPLE)
    assert repo.layout == "helm"
    assert sorted(repo.iocs) == sorted(CA_PVS)
    for name, ioc in repo.iocs.items():
        assert ioc.image and image_name(ioc.image) in EMBEDDED_IMAGES
        assert how_to_run(ioc.image).runnable
        prefix = ioc.environment["IOC_PREFIX"]
        assert prefix == name.upper()
        assert ioc.config_dir is not None
        if (ioc.config_dir / "ioc.py").is_file():  # the Python soft IOC: prefix from its env
            assert 'os.environ.get("IOC_PREFIX"' in (ioc.config_dir / "ioc.py").read_text()
            continue
        text = (ioc.config_dir / "ioc.yaml").read_text()
        assert f'"{prefix}:' in text  # records use the instance's prefix
        assert repo.services[name].values["global"]["domain"] == "bl01b"


def test_every_template_an_instance_loads_is_in_its_config_folder() -> None:
    repo = ServicesRepo.load(EXAMPLE)
    for ioc in repo.iocs.values():
        assert ioc.config_dir is not None
        if not (ioc.config_dir / "ioc.yaml").is_file():
            continue  # the Python soft IOC makes its records itself
        doc = yaml.safe_load((ioc.config_dir / "ioc.yaml").read_text())
        files = [e["file"] for e in doc["entities"] if e["type"] == "berth.Template"]
        assert files, ioc.name
        for file in files:
            text = (ioc.config_dir / file).read_text()
            assert re.search(r"^record\(", text, re.MULTILINE), file


def test_the_pva_instance_defines_a_qsrv_group() -> None:
    text = (EXAMPLE / "services" / "bl01b-ea-pva-01" / "config" / "position.db").read_text()
    assert text.count('info(Q:group, {"$(P)POSITION"') == 3
