"""The PVI device model (`*.pvi.device.yaml`): read, check and resolve parents and includes.

A device is a tree of components: signals (R, W, RW, X), references to other devices, and
groups with a layout. Files are checked strictly: an unknown key or type is an error naming
file:line and field, because a silently ignored typo would leave a PV off an operator's screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import BerthError, Location, error
from berth.yamlio import Reader, YDict, YList, load_yaml

DEVICE_SUFFIX = ".pvi.device.yaml"

# Widget type -> its own keys and their Python types. Read widgets show a value, write widgets
# set one; which list a widget is in decides where it may appear.
READ_WIDGETS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "TextRead": {"lines": int, "format": str},
    "LED": {},
    "ProgressBar": {},
    "ArrayTrace": {"axis": str},
    "ImageRead": {},
    "TableRead": {"widgets": list},
    "BitField": {"labels": list, "number_of_bits": int},
}
WRITE_WIDGETS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "TextWrite": {"lines": int, "format": str},
    "ComboBox": {"choices": list},
    "CheckBox": {},
    "ToggleButton": {},
    "ButtonPanel": {"actions": dict},
    "ArrayWrite": {},
    "TableWrite": {"widgets": list},
}
TEXT_FORMATS = ("decimal", "hexadecimal", "engineer", "exponential", "string")
LAYOUTS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "Grid": {"labelled": bool, "stacked": bool},
    "SubScreen": {"labelled": bool},
    "Row": {"header": (list, type(None))},
    "Plot": {},
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Widget:
    type: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_read(self) -> bool:
        return self.type in READ_WIDGETS


@dataclass
class Layout:
    type: str = "Grid"
    labelled: bool = True
    header: list[str] | None = None


@dataclass
class Component:
    name: str
    label: str
    description: str
    line: int


@dataclass
class Signal(Component):
    kind: str  # SignalR, SignalW, SignalRW, SignalX
    read_pv: str | None = None
    write_pv: str | None = None
    read_widget: Widget | None = None
    write_widget: Widget | None = None
    value: str = ""  # what a SignalX writes


@dataclass
class DeviceRef(Component):
    pv: str  # the referenced device's prefix: its PVI PV is `<pv>PVI`
    ui: str  # its screen file (without extension)
    macros: dict[str, str] = field(default_factory=dict)


@dataclass
class Ignored(Component):
    """Marks a name as deliberately left out, hiding an inherited component of that name."""


@dataclass
class Group(Component):
    layout: Layout
    children: list[Component]


@dataclass
class Device:
    label: str
    children: list[Component]
    file: Path | None = None
    parent: str | None = None

    @property
    def name(self) -> str:
        """The device type name: the file stem without `.pvi.device.yaml`."""
        if self.file is None:
            return pascal_name(self.label)
        return device_stem(self.file)


def device_stem(path: Path) -> str:
    name = path.name
    return name[: -len(DEVICE_SUFFIX)] if name.endswith(DEVICE_SUFFIX) else path.stem


def title_case(name: str) -> str:
    """PascalCase name -> words for a label: 'NDROIStat8' -> 'NDROI Stat 8'."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    text = re.sub(r"(?<=[A-Za-z])(?=[0-9])", " ", text)
    return text.replace("_", " ").strip()


def snake_case(name: str) -> str:
    """PascalCase name -> the snake_case attribute name ophyd-async gives it."""
    return title_case(name).lower().replace(" ", "_")


def pascal_name(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text)
                   if part) or "Device"


# --- parsing ---------------------------------------------------------------------------------


class _Reader(Reader):
    """Parses one file; collects every problem so the user sees them all at once."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    # Components --------------------------------------------------------------------------

    def device(self, data: Any) -> tuple[str, str | None, YList]:
        top = self.mapping(data, Location(self.path, 1), None, "a PVI device file")
        if top is None:
            return "", None, YList()
        self.keys(top, sorted({"label", "parent", "children"}), (), "device", "device")
        label = self.text(top, "label", "device", "device", required=True)
        parent = self.text(top, "parent", "device", "device") or None
        children = top.get("children") or YList()
        if not isinstance(children, YList):
            self.add("must be a list", top.key_loc("children"), "children", "device")
            children = YList()
        return label, parent, children

    def components(self, items: YList, where: str) -> list[Component | _Include]:
        out: list[Component | _Include] = []
        for index, item in enumerate(items):
            data = self.mapping(item, items, index, f"{where}[{index}]")
            if data is None:
                continue
            parsed = self.component(data, f"{where}[{index}]")
            if parsed is not None:
                out.append(parsed)
        return out

    def component(self, data: YDict, where: str) -> Component | _Include | None:
        kind = data.get("type")
        name = data.get("name")
        entity = f"{kind or 'component'} {name}" if name else where
        if kind == "Include":
            self.keys(data, sorted({"type", "file_name"}), (), entity, entity)
            file_name = self.text(data, "file_name", entity, entity, required=True)
            return _Include(file_name, data.pos[0]) if file_name else None
        common = {"type", "name", "label", "description"}
        if not isinstance(name, str) or not _NAME.match(name):
            self.add("must be a name of letters, digits and '_'", data.key_loc("name"), "name",
                         entity)
            return None
        label = self.text(data, "label", entity, entity) or title_case(name)
        description = self.text(data, "description", entity, entity)
        if kind == "IgnoredComponent":
            self.keys(data, sorted(common), (), entity, entity)
            return Ignored(name, label, description, data.pos[0])
        if kind == "Group":
            self.keys(data, sorted(common | {"layout", "children"}), (), entity, entity)
            layout = self.layout(data, entity)
            children = data.get("children") or YList()
            if not isinstance(children, YList):
                self.add("must be a list", data.key_loc("children"), "children", entity)
                children = YList()
            parsed = self.components(children, f"{entity}.children")
            return _PendingGroup(name, label, description, data.pos[0], layout, parsed)
        if kind == "DeviceRef":
            self.keys(data, sorted(common | {"pv", "ui", "macros"}), (), entity, entity)
            macros = data.get("macros") or {}
            if not isinstance(macros, dict):
                self.add("must be a mapping", data.key_loc("macros"), "macros", entity)
                macros = {}
            return DeviceRef(name, label, description, data.pos[0],
                             pv=self.text(data, "pv", entity, entity, required=True),
                             ui=self.text(data, "ui", entity, entity),
                             macros={str(k): "" if v is None else str(v)
                                     for k, v in macros.items()})
        if kind in ("SignalR", "SignalW", "SignalRW", "SignalX"):
            return self.signal(kind, name, label, description, data, entity)
        self.add(f"unknown component type {kind!r} (expected SignalR, SignalW, SignalRW, "
                     "SignalX, DeviceRef, Group, Include or IgnoredComponent)",
                     data.key_loc("type"), "type", entity)
        return None

    def signal(self, kind: str, name: str, label: str, description: str, data: YDict,
               entity: str) -> Signal | None:
        keys = {"type", "name", "label", "description"}
        reads = kind in ("SignalR", "SignalRW")
        writes = kind != "SignalR"
        if reads:
            keys |= {"read_pv", "read_widget"}
        if writes:
            keys |= {"write_pv", "write_widget"}
        if kind == "SignalX":
            keys |= {"value"}
        self.keys(data, sorted(keys), (), entity, entity)
        signal = Signal(name, label, description, data.pos[0], kind=kind)
        if writes:
            signal.write_pv = self.text(data, "write_pv", entity, entity, required=True) or None
            default = "ButtonPanel" if kind == "SignalX" else "TextWrite"
            signal.write_widget = self.widget(data, "write_widget", entity, WRITE_WIDGETS,
                                              default)
        if reads:
            required = kind == "SignalR"
            signal.read_pv = self.text(data, "read_pv", entity, entity,
                                       required=required) or None
            if kind == "SignalR":
                signal.read_widget = self.widget(data, "read_widget", entity, READ_WIDGETS,
                                                 "TextRead")
            elif "read_widget" in data and data["read_widget"] is not None:
                signal.read_widget = self.widget(data, "read_widget", entity, READ_WIDGETS,
                                                 "TextRead")
                # A readback widget with no PV of its own reads the setpoint's PV.
                signal.read_pv = signal.read_pv or signal.write_pv
        if kind == "SignalX":
            signal.value = self.text(data, "value", entity, entity)
            if signal.write_widget and signal.write_widget.type == "ButtonPanel" and \
                    not signal.write_widget.options.get("actions"):
                signal.write_widget.options["actions"] = {label: signal.value}
        if (reads and not signal.read_pv and kind == "SignalR") or \
                (writes and not signal.write_pv):
            return None
        return signal

    def widget(self, data: YDict, key: str, entity: str,
               allowed: dict[str, dict[str, type | tuple[type, ...]]], default: str) -> Widget:
        raw = data.get(key)
        if raw is None:
            return Widget(default)
        spec = self.mapping(raw, data.key_loc(key), None, f"{entity} {key}", entity)
        if spec is None:
            return Widget(default)
        kind = spec.get("type")
        if kind not in allowed:
            self.add(f"unknown widget {kind!r} here (expected one of: "
                         f"{', '.join(sorted(allowed))})", spec.key_loc("type"),
                         f"{key}.type", entity)
            return Widget(default)
        options: dict[str, Any] = {}
        for option, value in spec.items():
            if option == "type":
                continue
            expected = allowed[kind].get(option)
            if expected is None:
                self.add(f"unknown key for {kind}", spec.key_loc(option),
                             f"{key}.{option}", entity)
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                self.add(f"has the wrong type {type(value).__name__}", spec.key_loc(option),
                         f"{key}.{option}", entity)
            else:
                options[option] = value
        fmt = options.get("format")
        if fmt is not None and fmt not in TEXT_FORMATS:
            self.add(f"unknown format {fmt!r} (expected one of: {', '.join(TEXT_FORMATS)})",
                         spec.key_loc("format"), f"{key}.format", entity)
        if kind == "ButtonPanel" and "actions" in options:
            options["actions"] = {str(k): "" if v is None else str(v)
                                  for k, v in options["actions"].items()}
        for list_key in ("choices", "labels"):
            if list_key in options:
                options[list_key] = [str(v) for v in options[list_key]]
        return Widget(kind, options)

    def layout(self, data: YDict, entity: str) -> Layout:
        raw = data.get("layout")
        if raw is None:
            return Layout()
        spec = self.mapping(raw, data.key_loc("layout"), None, f"{entity} layout", entity)
        if spec is None:
            return Layout()
        kind = spec.get("type")
        if kind not in LAYOUTS:
            self.add(f"unknown layout {kind!r} (expected one of: {', '.join(LAYOUTS)})",
                         spec.key_loc("type"), "layout.type", entity)
            return Layout()
        self.keys(spec, sorted({"type", *LAYOUTS[kind]}), (), entity, entity)
        labelled = spec.get("labelled", True)
        if not isinstance(labelled, bool):
            self.add("must be true or false", spec.key_loc("labelled"),
                         "layout.labelled", entity)
            labelled = True
        header = spec.get("header")
        if header is not None and not isinstance(header, list):
            self.add("must be a list", spec.key_loc("header"), "layout.header", entity)
            header = None
        return Layout(kind, labelled, [str(h) for h in header] if header else None)


@dataclass
class _Include:
    file_name: str
    line: int


@dataclass
class _PendingGroup(Component):
    layout: Layout
    children: list[Component | _Include]


# --- resolution ------------------------------------------------------------------------------


def find_device_file(name: str, search: list[Path],
                     probes: list[tuple[str, bool]] | None = None) -> Path | None:
    """`name` may be a device name (`NDStats`), a file name or a path relative to a folder.
    `probes`, when given, receives each path tried and whether it was a file."""
    candidates = [name] if name.endswith(".yaml") else [name + DEVICE_SUFFIX, name]
    for folder in search:
        for candidate in candidates:
            path = folder / candidate
            found = path.is_file()
            if probes is not None:
                probes.append((str(path), found))
            if found:
                return path
    return None


class DeviceLoader:
    """Loads devices once each, resolving `parent` and `Include` through a search path.

    A parent or include that no file defines (e.g. `asynPortDriver`, whose PVs are generic)
    counts as an empty device, as the corpus expects. `probes` and `files` record what the
    result depends on: every path looked up (and whether it was a file), every file read.
    """

    def __init__(self, search: list[Path]):
        self.search = [Path(p) for p in search]
        self._cache: dict[Path, Device] = {}
        self._flat_cache: dict[Path, list[Component]] = {}  # included devices, unmerged
        self._loading: list[Path] = []
        self.probes: list[tuple[str, bool]] = []
        self.files: list[Path] = []

    def load_name(self, name: str) -> Device | None:
        path = find_device_file(name, self.search, self.probes)
        return self.load(path) if path else None

    def load(self, path: Path) -> Device:
        path = Path(path).resolve()
        if path in self._cache:
            return self._cache[path]
        if path in self._loading:
            chain = " -> ".join(p.name for p in [*self._loading, path])
            raise error(f"devices include each other in a loop: {chain}", path)
        self._loading.append(path)
        self.files.append(path)
        try:
            device = self._load(path)
        finally:
            self._loading.pop()
        self._cache[path] = device
        return device

    def _load(self, path: Path) -> Device:
        children, label, parent = self._flat(path)
        return Device(label=label, children=merge_components(children), file=path,
                      parent=parent)

    def _flat(self, path: Path) -> tuple[list[Component], str, str | None]:
        """A device's components with its includes and parent spliced in where pvi puts them
        (an include in its place, the parent last), not yet merged: pvi merges once, for the
        device it formats."""
        reader = _Reader(path)
        label, parent, raw_children = reader.device(load_yaml(path))
        pending = reader.components(raw_children, "children")
        if reader.problems:
            raise BerthError(reader.problems)
        # The device's own folder is searched first, then the caller's path.
        search_here = [path.parent, *[p for p in self.search if p.resolve() != path.parent]]
        children = self._splice(pending, search_here)
        if parent:
            children += self._included(parent, search_here)
        return children, label, parent

    def _included(self, name: str, search: list[Path]) -> list[Component]:
        found = find_device_file(name, search, self.probes)
        if found is None:
            return []
        found = found.resolve()
        if found in self._loading:
            chain = " -> ".join(p.name for p in [*self._loading, found])
            raise error(f"devices include each other in a loop: {chain}", found)
        cached = self._flat_cache.get(found)
        if cached is not None:
            return list(cached)  # (merging never changes the components it is given)
        self._loading.append(found)
        if found not in self.files:
            self.files.append(found)
        try:
            flat = self._flat(found)[0]
        finally:
            self._loading.pop()
        self._flat_cache[found] = flat
        return list(flat)

    def _splice(self, items: list[Component | _Include], search: list[Path]
                ) -> list[Component]:
        out: list[Component] = []
        for item in items:
            if isinstance(item, _Include):
                out += self._included(item.file_name, search)
            elif isinstance(item, _PendingGroup):
                out.append(Group(item.name, item.label, item.description, item.line,
                                 item.layout, self._splice(item.children, search)))
            else:
                out.append(item)
        return out


def merge_components(components: list[Component]) -> list[Component]:
    """pvi's merge of a device's spliced components (read from pvi 0.14, which ibek 4.6.2
    uses): top-level groups of one name become one, a later child replacing an earlier one
    of its name in place (so a base device's IgnoredComponent hides the driver's signal); a
    new group drops children equal to one already in another group; a non-group named like a
    group replaces it; other components are kept as they come."""
    merged: list[Component] = []
    groups: dict[str, tuple[Group, int]] = {}
    for comp in components:
        known = groups.get(comp.name)
        if not isinstance(comp, Group):
            if known is not None:
                merged[known[1]] = comp
            else:
                merged.append(comp)
            continue
        if known is None:
            children = [c for c in comp.children
                        if not any(_same(c, o) for g, _ in groups.values() for o in g.children)]
            group = Group(comp.name, comp.label, comp.description, comp.line, comp.layout,
                          children)
            groups[comp.name] = (group, len(merged))
            merged.append(group)
            continue
        old, at = known
        new = {c.name: c for c in comp.children}
        children = []
        for child in old.children:
            dup = new.pop(child.name, None)
            if dup is not None:
                _check_collision(comp.name, child, dup)
            children.append(child if dup is None else dup)
        group = Group(old.name, old.label, old.description, old.line, old.layout,
                      children + list(new.values()))
        if merged[at] is old:  # (else a non-group replaced it, and it stays replaced)
            merged[at] = group
        groups[comp.name] = (group, at)
    return merged


def _same(a: Component, b: Component) -> bool:
    """Equal apart from where they were read."""
    return type(a) is type(b) and {**vars(a), "line": 0} == {**vars(b), "line": 0}


def _check_collision(group: str, old: Component, new: Component) -> None:
    for attr in ("read_pv", "write_pv", "pv"):
        a, b = getattr(old, attr, None), getattr(new, attr, None)
        if a is not None and b is not None and a != b:
            raise error(f"PVI group {group}: {new.name}'s {attr} {b!r} collides with {a!r} "
                        "of the component it replaces")


def load_device(path: Path, search: list[Path] | None = None) -> Device:
    """Read one device file; `search` lists folders where parents and includes are found."""
    path = Path(path)
    if not path.is_file():
        raise error("no such PVI device file", path)
    return DeviceLoader(search or []).load(path)


def iter_signals(components: list[Component]) -> list[Signal]:
    """Every signal in the tree, in screen order."""
    out: list[Signal] = []
    for component in components:
        if isinstance(component, Signal):
            out.append(component)
        elif isinstance(component, Group):
            out.extend(iter_signals(component.children))
    return out
