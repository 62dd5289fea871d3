"""`berth run` of an instance YAML does ibek's runtime steps after generating, as ioc-template's
start.sh does: place-files, then generate-autosave."""

from __future__ import annotations

from pathlib import Path

from berth.run.launch import RunOptions, prepare

SUPPORT = """\
module: lab
entity_models:
  - name: Gauge
    description: a gauge of the lab's own, its template in the config folder
    parameters:
      P: {type: str, description: prefix}
      G: {type: id, description: gauge name}
    databases:
      - file: gauge.template
        args: {P: , G: }
"""

IOC = """\
ioc_name: lab-ioc-01
entities:
  - {type: lab.Gauge, P: "LAB:", G: G1}
  - {type: lab.Gauge, P: "LAB:", G: G2}
"""


def test_run_places_files_and_writes_autosave_requests(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "lab.ibek.support.yaml").write_text(SUPPORT)
    (config / "ioc.yaml").write_text(IOC)
    (config / "gauge.template").write_text('record(ao, "$(P)$(G):SETPOINT") {}\n')
    (config / "gauge_settings.req").write_text("$(P)$(G):SETPOINT\n")
    (config / "gauge.proto").write_text("Terminator = CR;\n")
    runtime = tmp_path / "runtime"
    launch = prepare(RunOptions(config, runtime_dir=runtime))
    assert launch.mode == "yaml"
    assert (runtime / "protocol" / "gauge.proto").read_text() == "Terminator = CR;\n"
    assert (runtime / "db" / "gauge.template").is_file()
    assert (runtime / "autosave_settings.req").read_text() == \
        "LAB:G1:SETPOINT\nLAB:G2:SETPOINT\n"
    assert not (runtime / "autosave_positions.req").exists()  # no positions template
    # the embedded soft IOC keeps its request-template links in the runtime folder
    assert (runtime / "autosave" / "gauge_settings.req").resolve() == \
        (config / "gauge_settings.req").resolve()
    assert "LAB:G2:SETPOINT" in (runtime / "ioc.db").read_text()
