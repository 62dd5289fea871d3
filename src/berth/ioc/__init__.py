"""ibek's job: support definitions + IOC instance YAML -> st.cmd, ioc.subst, wait_list.yaml,
PVI templates and screens; and the JSON schemas of both.

Public face (imported on first use, so that `import berth.ioc` costs nothing):
    write_outputs, GenerateOptions, Generated, ioc_schema, find_instance_files, default_defs
and the module `berth.ioc.generate`, whose `generate(instance_files, defs, options)` does the
work (the module keeps the name: `from berth.ioc import generate` gives the module).

Inside: `support` (definitions) -> `entity` (checked fields, the view templates get) ->
`expand` (steps 1-3 of generation) -> `render` (output text, option and result types), with
`templates` (Jinja, sandboxed) and `generate` (the whole run, and writing the files).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.ioc.generate import default_defs, find_instance_files, write_outputs
    from berth.ioc.render import Generated, GenerateOptions
    from berth.ioc.schema import ioc_schema

__all__ = ["GenerateOptions", "Generated", "default_defs", "find_instance_files", "ioc_schema",
           "write_outputs"]


def __getattr__(name: str) -> object:
    # (plain imports, not importlib strings: tools and import-linter see them)
    if name in ("write_outputs", "find_instance_files", "default_defs"):
        from berth.ioc import generate as module
    elif name in ("GenerateOptions", "Generated"):
        from berth.ioc import render as module  # type: ignore[no-redef]
    elif name == "ioc_schema":
        from berth.ioc import schema as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'berth.ioc' has no attribute {name!r}")
    return getattr(module, name)
