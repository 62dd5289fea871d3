"""The `<Device>.pvi.template`: QSRV group tags that build the `<prefix>PVI` PV.

Two layouts:

* `ntpvi` (default): the NTPVI structure ophyd-async's `PviDeviceConnector` reads:
  `value.<snake_name>.{r,w,rw,x,d}` holding PV names, top-level id `epics:nt/NTPVI:1.0`.
  A read/write signal with one PV is `rw`, with two PVs `r` + `w`.
* `pvi`: ibek's layout, `pvi.<Name>.{r,w,rw,x}` (what the corpus's expected files hold).

Group fields are attached to the existing records (`record("*", …)`, so loading fails loudly if
a PV's record does not exist) and map the record's `NAME`. A PV that is a field of a record
(`rec.STOP`) or a sub-device's PVI PV has no record of that name; it gets a small `lsi` record
holding the name instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from berth.errors import error
from berth.screens.pvi_model import Component, Device, DeviceRef, Group, Signal, snake_case

LAYOUTS = ("ntpvi", "pvi")
NTPVI_ID = "epics:nt/NTPVI:1.0"


@dataclass(frozen=True)
class PviEntry:
    """One PV of the device: its attribute name, access kind (r/w/rw/x/d) and PV name."""

    name: str
    access: str
    pv: str


def pvi_entries(device: Device) -> list[PviEntry]:
    """Every PV the device publishes, in screen order; a name appears once."""
    out: list[PviEntry] = []
    seen: set[str] = set()

    def visit(components: list[Component]) -> None:
        for component in components:
            if isinstance(component, Group):
                visit(component.children)
            elif isinstance(component, DeviceRef) and component.name not in seen:
                seen.add(component.name)
                out.append(PviEntry(component.name, "d", component.pv + "PVI"))
            elif isinstance(component, Signal) and component.name not in seen:
                seen.add(component.name)
                out.extend(_signal_entries(component))

    visit(device.children)
    return out


def _signal_entries(signal: Signal) -> list[PviEntry]:
    name = signal.name
    if signal.kind == "SignalR":
        return [PviEntry(name, "r", signal.read_pv or "")]
    if signal.kind == "SignalW":
        return [PviEntry(name, "w", signal.write_pv or "")]
    if signal.kind == "SignalX":
        return [PviEntry(name, "x", signal.write_pv or "")]
    if signal.read_pv and signal.read_pv != signal.write_pv:
        return [PviEntry(name, "r", signal.read_pv), PviEntry(name, "w", signal.write_pv or "")]
    return [PviEntry(name, "rw", signal.write_pv or "")]


def _field_path(entry: PviEntry, layout: str) -> str:
    if layout == "pvi":
        return f"pvi.{entry.name}.{entry.access}"
    return f"value.{snake_case(entry.name)}.{entry.access}"


def _is_record_name(pv: str) -> bool:
    return "." not in pv


def render_pvi_template(device: Device, pv_prefix: str, layout: str = "ntpvi") -> str:
    """The template text. `pv_prefix` (e.g. `$(P)$(R)`) names the group PV `<prefix>PVI`."""
    if layout not in LAYOUTS:
        raise error(f"unknown PVI layout {layout!r} (expected one of: {', '.join(LAYOUTS)})",
                    field="layout")
    group = f"{pv_prefix}PVI"
    # Fields per record, in order: a record carries one info(Q:group) tag with all its fields.
    by_record: dict[str, list[tuple[str, dict[str, object]]]] = {}
    helpers: list[tuple[str, str, str]] = []  # (record, field path, PV name held)
    for entry in pvi_entries(device):
        path = _field_path(entry, layout)
        if entry.access != "d" and _is_record_name(entry.pv):
            by_record.setdefault(entry.pv, []).append(
                (path, {"+channel": "NAME", "+type": "plain"}))
        else:
            record = f"{group}:_{snake_case(entry.name)}_{entry.access}"
            helpers.append((record, path, entry.pv))
    first = True
    blocks: list[str] = []

    def info(fields: list[tuple[str, dict[str, object]]]) -> str:
        nonlocal first
        body: dict[str, object] = {}
        if first and layout == "ntpvi":
            body["+id"] = NTPVI_ID
        for path, mapping in fields:
            if first:
                # Names never change, but a group with no trigger logs a warning at iocInit.
                mapping = {**mapping, "+trigger": "*"}
                first = False
            body[path] = mapping
        text = json.dumps({group: body}, indent=4)
        return "    info(Q:group, " + text.replace("\n", "\n    ") + ")"

    for record, fields in by_record.items():
        blocks.append(f'record("*", "{record}") {{\n{info(fields)}\n}}')
    for record, path, pv in helpers:
        blocks.append(
            f'record(lsi, "{record}") {{\n'
            '    field(SIZV, "256")\n'
            f"    field(INP, {{const: {json.dumps(pv)}}})\n"
            '    field(PINI, "YES")\n'
            f'{info([(path, {"+channel": "VAL", "+type": "plain"})])}\n}}')
    header = f"### PV Interface for {device.label} ###"
    footer = f"### End of PV Interface for {device.label} ###"
    return "\n".join([header, "", "\n\n".join(blocks), "", footer]) + "\n"
