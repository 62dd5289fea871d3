"""Plain value classes for the modules `berth generate` and `berth run` import at every start.

`dataclasses` imports `inspect` (and with it `ast`, `dis`, `tokenize`) and writes each class's
methods with `exec` when its module is imported: ~25 ms of a `berth generate` that takes ~0.1 s.
A class here names its fields once, in `FIELDS` (and in `__slots__` when it has slots), writes
its own `__init__`, and gets from `Value` what a dataclass would give it: equality field by field
with an object of the same class, and a repr naming each field. `Frozen` values also refuse
assignment and hash by their fields, as `@dataclass(frozen=True)` does.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing is not imported at start-up)
if TYPE_CHECKING:
    from typing import Any


class Value:
    """Equality and repr from the fields named in `FIELDS`."""

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()

    def field_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:  # (and so unhashable, as a dataclass is)
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Value)
        return self.field_values() == other.field_values()

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__qualname__}({inner})"


class Frozen(Value):
    """A Value whose fields are set once, in `__init__` (through `object.__setattr__`)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field '{name}' of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}' of a {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(self.field_values())
