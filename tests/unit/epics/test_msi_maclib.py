"""berth's macro expansion checked against libCom's macLib itself (through ctypes): the same
definitions, the same strings, the same results, including the odd corners."""

from __future__ import annotations

import ctypes
import random
from collections.abc import Iterator

import pytest

from berth.epics.macros import MacroTable, Report, compile_text, parse_definitions

DEFINITIONS = (r'A=1, B="x y", C=$(A)$(B), D=\$(A), E=$(X=e), F=$(F), G=$(H), H=$(G), '
               r"I=\"$(A)\", J='$(A)', K=a\,b, L = spaced , N_1=nested")


class MacLib:
    """The few macLib calls the comparison needs."""

    def __init__(self) -> None:
        import epicscorelibs.path

        # libCom alone, privately: nothing else of EPICS enters the test process.
        com = ctypes.CDLL(epicscorelibs.path.get_lib("Com"))
        vp = ctypes.c_void_p
        com.macCreateHandle.argtypes = [ctypes.POINTER(vp), vp]
        com.macDeleteHandle.argtypes = [vp]
        com.macParseDefns.argtypes = [vp, ctypes.c_char_p,
                                      ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p))]
        com.macInstallMacros.argtypes = [vp, ctypes.POINTER(ctypes.c_char_p)]
        com.macExpandString.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_long]
        com.macExpandString.restype = ctypes.c_long
        com.macSuppressWarning.argtypes = [vp, ctypes.c_int]
        self.com = com

    def parse(self, text: str) -> list[tuple[str, str | None]]:
        pairs = ctypes.POINTER(ctypes.c_char_p)()
        count = self.com.macParseDefns(None, text.encode(), ctypes.byref(pairs))
        return [(pairs[2 * i].decode(),
                 None if pairs[2 * i + 1] is None else pairs[2 * i + 1].decode())
                for i in range(max(count, 0))]

    def expand(self, definitions: str, text: str) -> tuple[str, bool]:
        """Expanded text and whether macLib flagged a problem."""
        handle = ctypes.c_void_p()
        self.com.macCreateHandle(ctypes.byref(handle), None)
        self.com.macSuppressWarning(handle, 1)  # keep the test output quiet...
        pairs = ctypes.POINTER(ctypes.c_char_p)()
        self.com.macParseDefns(handle, definitions.encode(), ctypes.byref(pairs))
        self.com.macInstallMacros(handle, pairs)
        self.com.macSuppressWarning(handle, 0)  # ...but not the ",undefined" markers
        buffer = ctypes.create_string_buffer(65536)
        length = self.com.macExpandString(handle, text.encode(), buffer, len(buffer))
        self.com.macDeleteHandle(handle)
        return buffer.value.decode(), length < 0


@pytest.fixture(scope="module")
def maclib() -> MacLib:
    return MacLib()


def berth_expand(definitions: str, text: str) -> tuple[str, bool, str, bool]:
    table = MacroTable()
    table.define(parse_definitions(definitions))
    direct, compiled = Report(), Report()
    return (table.expand(text, direct), bool(direct),
            table.expand_compiled(compile_text(text), compiled), bool(compiled))


CURATED = [
    "$(A)", "${A}", '"$(A)"', "'$(A)'", "\\$(A)", "$(D)", "$(I)", "$(J)", "$(K)", "$(L)|",
    "$(X)", "${X}", "$(X=dflt)", "$(X=$(A)z)", '$(X="a)b")', "$(X=a,b)", "$(X=$(Y=q))",
    "$(N_$(A))", "${N_${A}}", "$(X", "$(A", "${A)", "$(X=a\\)b)", '$(X="\\"")', "$(Y,Y=3)",
    "$(X=$(Y),Y=3)", "$(Q,A=2,Q=$(A))", "$(Q,Q=$(A),A=2)", "$(Q,Q=$(Q))", "$(F)", "$(G)",
    "$(C)", "$(E)", "it's $(A)", "'a\\'b'$(A)", '"\'$(A)', "$$(A)", "$()", "$(=q)",
    "record(ai, \"$(A):$(B)\") { field(DESC, \"$(X=none)\") }",
]


def cases() -> Iterator[str]:
    yield from CURATED
    pieces = ["$(", "${", ")", "}", "=", ",", '"', "'", "\\", "A", "B", "X", "a", " ", "$", "("]
    rng = random.Random(4)
    for _ in range(3000):
        yield "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))


def test_expansion_matches_maclib(maclib: MacLib) -> None:
    differences = []
    for text in cases():
        line = text + "\n"  # msi expands whole lines; macLib misreads some unterminated ends
        expected, flagged = maclib.expand(DEFINITIONS, line)
        direct, direct_flag, compiled, compiled_flag = berth_expand(DEFINITIONS, line)
        if (direct, direct_flag) != (expected, flagged) or (compiled, compiled_flag) != (
                expected, flagged):
            differences.append((line, expected, flagged, direct, compiled))
    assert differences == []


def test_definitions_are_split_as_maclib_splits_them(maclib: MacLib) -> None:
    pieces = ["=", ",", '"', "'", "\\", "A", "B", "x", " ", "$(A)", "\t"]
    rng = random.Random(1)
    texts = [DEFINITIONS, ' A = 1 2 , B= ,,C=3=4, D=a"b,c"d, =5, E', "A", ""]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
              for _ in range(3000)]
    # macLib corrupts its heap on unbalanced quotes: leave those out.
    texts = [t for t in texts if t.count('"') % 2 == 0 and t.count("'") % 2 == 0]
    differences = [(t, maclib.parse(t), parse_definitions(t)) for t in texts
                   if maclib.parse(t) != parse_definitions(t)]
    assert differences == []
