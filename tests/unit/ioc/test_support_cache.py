"""The support cache: parsed support files are reused by content, never stale, and any trouble
with the cache falls back to parsing silently."""

from __future__ import annotations

import os
import pickle
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

import berth
from berth.errors import BerthError, Location
from berth.ioc import support as support_module
from berth.ioc.generate import GenerateOptions, generate
from berth.ioc.support import MISSING, EntityModel, load_support
from berth.ioc.support_cache import SupportCache, cache_dir
from berth.values import Value
from berth.yamlio import YDict, YList
from conftest import run_berth

DATA = Path(__file__).parents[2] / "data" / "generate"
DEMO = DATA / "demo.ibek.support.yaml"
OPTIONS = GenerateOptions(ioc_dir="/epics/ioc", runtime_dir="/epics/runtime", ioc_name="DEMO",
                          pvi_defs=[DATA])

DEMO_IOC = """\
ioc_name: "{{ _global.get_env('IOC_NAME') }}"
description: cache test
entities:
  - type: demo.Port
    name: p1
    host: h1:1
    parity: even
  - type: demo.Port
    name: p2
    host: h2:2
    priority: "{{ 5 * 3 }}"
    auto: true
  - type: demo.Device
    port: p1
    P: "DEV1:"
    channel: 3
    enable_extra: true
  - type: demo.Group
    name: g
    count: 3
  - type: demo.Counter
    name: c1
  - type: demo.Screen
    P: "SCR:"
  - type: ibek.repeat
    values: [x, y]
    entity:
      type: demo.Command
      command: "repeat {{ index }}"
"""


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pickle")) if folder.is_dir() else []


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any parse of a support file fail the test: loads must come from the cache."""
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("support file parsed although it is cached")

    monkeypatch.setattr(support_module, "loads_yaml", fail)
    monkeypatch.setattr(support_module, "load_yaml", fail)


def load_uncached(paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as mp:
        mp.setenv("BERTH_NO_CACHE", "1")
        return load_support(paths)


def files_named(value: Any, seen: set[int] | None = None) -> set[str]:
    """Every file name held by the locations and YAML containers in `value`."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return set()
    seen.add(id(value))
    found: set[str] = set()
    if isinstance(value, Location | YDict | YList):
        found.add(str(value.file))
    if isinstance(value, dict):
        for key, item in value.items():
            found |= files_named(key, seen) | files_named(item, seen)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= files_named(item, seen)
    elif isinstance(value, Value):
        for item in value.field_values():
            found |= files_named(item, seen)
    return found


def outputs(instance: Path, defs: list[Path], options: GenerateOptions) -> dict[str, Any]:
    out = generate([instance], defs, options)
    return {"st.cmd": out.st_cmd, "ioc.subst": out.ioc_subst, "wait_list": out.wait_list,
            "warnings": [str(w) for w in out.warnings], "pvi": out.pvi_files(),
            "entities": [(e.type, e.label, str(e.loc)) for e in out.entities]}


# -- hits and misses give the same ------------------------------------------------------------


def test_hit_and_miss_give_equal_models(cache, monkeypatch):
    plain = load_uncached([DEMO], monkeypatch)
    assert entries(cache) == []
    cold = load_support([DEMO])
    assert len(entries(cache)) == 1
    with monkeypatch.context() as mp:
        no_parsing(mp)
        warm = load_support([DEMO])
    assert plain.models == cold.models == warm.models
    assert list(plain.models) == list(warm.models)
    assert warm.files == [DEMO]
    port = warm.models["demo.Port"]
    assert port.parameters["host"].default is MISSING and port.parameters["host"].required
    assert port.parameters["gain"].default == 2.0
    assert str(port.parameters["priority"].loc) == f"{DEMO}:20:7"
    group = warm.models["demo.Group"]
    assert isinstance(group.sub_entities[1], YDict)
    assert group.sub_entities[1].loc("values") == plain.models["demo.Group"].sub_entities[
        1].loc("values")
    assert files_named(warm.models) == {str(DEMO)}


def test_demo_outputs_equal_cold_and_warm(cache, tmp_path, monkeypatch):
    instance = tmp_path / "ioc.yaml"
    instance.write_text(DEMO_IOC)
    with monkeypatch.context() as mp:
        mp.setenv("BERTH_NO_CACHE", "1")
        plain = outputs(instance, [DEMO], OPTIONS)
    cold = outputs(instance, [DEMO], OPTIONS)
    assert len(entries(cache)) == 3  # the support file, the instance and the screens
    with monkeypatch.context() as mp:
        no_parsing(mp)
        warm = outputs(instance, [DEMO], OPTIONS)
    assert plain == cold == warm
    assert "repeat y" in warm["st.cmd"] and "member 2 (#2) of g" in warm["st.cmd"]


def test_corpus_sample_outputs_equal_cold_and_warm(corpus, cache, monkeypatch):
    ibek = corpus / "ibek"
    defs = [ibek / "support" / f"{n}.ibek.support.yaml" for n in ("ADCore", "quadem")]
    instance = ibek / "iocs" / "quadem.ibek.ioc.yaml"
    options = GenerateOptions(ioc_dir="/epics/ioc", runtime_dir="/epics/runtime",
                              ioc_name="TEST_IOC",
                              pvi_defs=[ibek / "epics" / "pvi-defs", ibek / "support"])
    with monkeypatch.context() as mp:
        mp.setenv("BERTH_NO_CACHE", "1")
        plain = outputs(instance, defs, options)
    cold = outputs(instance, defs, options)
    assert len(entries(cache)) == 4  # two support files, the instance and the screens
    with monkeypatch.context() as mp:
        no_parsing(mp)
        warm = outputs(instance, defs, options)
        warm_models = load_support(defs).models
    assert plain == cold == warm
    expected = (ibek / "outputs" / "quadem" / "st.cmd").read_text()
    assert warm["st.cmd"] == expected
    assert load_uncached(defs, monkeypatch).models == warm_models


# -- never stale ------------------------------------------------------------------------------


def test_same_content_elsewhere_names_the_path_loaded(cache, tmp_path, monkeypatch):
    first = tmp_path / "a" / "demo.ibek.support.yaml"
    second = tmp_path / "b" / "other.ibek.support.yaml"
    for path in (first, second):
        path.parent.mkdir()
        shutil.copy(DEMO, path)
    load_support([first])
    with monkeypatch.context() as mp:
        no_parsing(mp)
        warm = load_support([second])
    assert len(entries(cache)) == 1
    assert files_named(warm.models) == {str(second)}
    assert warm.models == load_uncached([second], monkeypatch).models
    # both at once: both hits, and the clash names each file where it is
    with monkeypatch.context() as mp:
        no_parsing(mp)
        with pytest.raises(BerthError) as info:
            load_support([first, second])
    problem = str(info.value.problems[0])
    assert problem.startswith(f"{second}:11:5: field 'name': entity type 'demo.Port' is "
                              f"defined twice: here and in {first}:11:5")


def test_changed_file_is_parsed_again(cache, tmp_path):
    path = tmp_path / "demo.ibek.support.yaml"
    shutil.copy(DEMO, path)
    assert load_support([path]).models["demo.Port"].parameters["host"].description == \
        "host:port"
    path.write_text(DEMO.read_text().replace("description: host:port",
                                             "description: where it connects"))
    changed = load_support([path])
    assert changed.models["demo.Port"].parameters["host"].description == "where it connects"
    assert len(entries(cache)) == 2
    shutil.copy(DEMO, path)  # back to the first content: a hit again
    assert load_support([path]).models["demo.Port"].parameters["host"].description == \
        "host:port"
    assert len(entries(cache)) == 2


def test_error_in_edited_file_names_file_line_column(cache, tmp_path):
    path = tmp_path / "demo.ibek.support.yaml"
    shutil.copy(DEMO, path)
    load_support([path])
    lines = DEMO.read_text().splitlines(keepends=True)
    assert lines[21] == "        description: priority\n"
    lines.insert(21, "        typo: 1\n")
    path.write_text("".join(lines))
    with pytest.raises(BerthError) as info:
        load_support([path])
    assert [str(p) for p in info.value.problems] == [
        f"{path}:22:9: field 'typo': unknown key 'typo' in parameter 'priority' of demo.Port; "
        "expected one of: type, description, default, values"]
    assert len(entries(cache)) == 1  # files with problems are not stored


def test_error_pointing_into_cached_file_names_it(cache, tmp_path, monkeypatch):
    path = tmp_path / "defs" / "demo.ibek.support.yaml"
    path.parent.mkdir()
    shutil.copy(DEMO, path)
    load_support([DEMO])  # the same content, stored from another path
    instance = tmp_path / "ioc.yaml"
    instance.write_text(textwrap.dedent("""\
        ioc_name: x
        entities:
          - {type: demo.Counter, name: a}
          - {type: demo.Counter, name: b}
          - {type: demo.Counter, name: c}
          - {type: demo.Counter, name: d}
        """))
    with monkeypatch.context() as mp:
        no_parsing(mp)
        with pytest.raises(BerthError) as warm:
            generate([instance], [path], OPTIONS)
    with monkeypatch.context() as mp:
        mp.setenv("BERTH_NO_CACHE", "1")
        with pytest.raises(BerthError) as plain:
            generate([instance], [path], OPTIONS)
    assert [str(p) for p in warm.value.problems] == [str(p) for p in plain.value.problems]
    text = "\n".join(str(p) for p in warm.value.problems)
    assert f"define 'number' of demo.Counter at {path}:113:7" in text
    assert str(DEMO) not in text


def test_key_includes_berth_version(cache, monkeypatch):
    load_support([DEMO])
    monkeypatch.setattr(berth, "__version__", "999.0")
    load_support([DEMO])
    assert len(entries(cache)) == 2


def test_crlf_file_loads_as_text_mode_would(cache, tmp_path, monkeypatch):
    path = tmp_path / "crlf.ibek.support.yaml"
    path.write_bytes(DEMO.read_bytes().replace(b"\n", b"\r\n"))
    cold = load_support([path])
    assert cold.models == load_uncached([path], monkeypatch).models
    assert str(cold.models["demo.Port"].parameters["priority"].loc) == f"{path}:20:7"


# -- trouble with the cache falls back silently -----------------------------------------------


def test_unwritable_cache_folder_falls_back(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("BERTH_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.delenv("BERTH_NO_CACHE", raising=False)
    assert load_support([DEMO]).models == load_uncached([DEMO], monkeypatch).models
    assert load_support([DEMO]).models == load_uncached([DEMO], monkeypatch).models
    assert capsys.readouterr() == ("", "")


def test_unwritable_cache_folder_in_cli(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    instance = tmp_path / "ioc.yaml"
    instance.write_text(DEMO_IOC)
    result = run_berth("generate", instance, "--defs", DEMO, "-o", tmp_path / "out",
                       "--pvi-defs", DATA, "--ioc-name", "DEMO",
                       env={"BERTH_CACHE_DIR": str(blocker / "cache")})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (tmp_path / "out" / "st.cmd").read_text().count("portConfigure") == 2


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x80\x05\x95", None])
def test_corrupt_entry_falls_back_and_is_replaced(cache, monkeypatch, content):
    expected = load_uncached([DEMO], monkeypatch).models
    load_support([DEMO])
    [entry] = entries(cache)
    good = entry.read_bytes()
    entry.write_bytes(good[:len(good) // 2] if content is None else content)
    assert load_support([DEMO]).models == expected
    assert entry.read_bytes() == good  # parsed again and stored again
    with monkeypatch.context() as mp:
        no_parsing(mp)
        assert load_support([DEMO]).models == expected


def damage_model(entry: Path, *model_names: str) -> None:
    """Rewrite a cache entry with some models' pickles spoilt, the rest of it intact."""
    stored = pickle.loads(entry.read_bytes())
    assert set(model_names) <= {name for _module, name, _data in stored}
    entry.write_bytes(pickle.dumps([(module, name, b"spoilt" if name in model_names else data)
                                    for module, name, data in stored], protocol=5))


def test_a_model_damaged_inside_its_entry_is_parsed_again_and_stored_anew(cache, monkeypatch):
    expected = load_uncached([DEMO], monkeypatch).models
    load_support([DEMO])
    [entry] = entries(cache)
    good = entry.read_bytes()
    damage_model(entry, "Port", "Device")
    parsed = []
    original = support_module.load_yaml
    monkeypatch.setattr(support_module, "load_yaml",
                        lambda *args: parsed.append(1) or original(*args))
    assert load_support([DEMO]).models == expected
    assert len(parsed) == 1  # one parse for both damaged models
    assert entry.read_bytes() == good
    with monkeypatch.context() as mp:
        no_parsing(mp)
        assert load_support([DEMO]).models == expected


def test_only_the_models_an_ioc_uses_are_unpickled(cache, tmp_path, monkeypatch):
    instance = tmp_path / "ioc.yaml"
    instance.write_text("ioc_name: x\nentities:\n  - {type: demo.Counter, name: a}\n")
    cold = generate([instance], [DEMO], OPTIONS)
    store = SupportCache.open()
    assert store is not None
    entry = store.path(store.key(DEMO.read_bytes()))
    damage_model(entry, "Port")  # the IOC has no port: its model is never read
    with monkeypatch.context() as mp:
        no_parsing(mp)
        warm = generate([instance], [DEMO], OPTIONS)
    assert (warm.st_cmd, warm.ioc_subst) == (cold.st_cmd, cold.ioc_subst)
    assert "spoilt" in str(pickle.loads(entry.read_bytes()))  # nothing stored again


def test_entry_of_other_shape_foreign_class_or_writable_by_others_is_ignored(cache,
                                                                           monkeypatch):
    expected = load_support([DEMO]).models
    [entry] = entries(cache)
    good = entry.read_bytes()
    monkeypatch.setattr(SupportCache, "put_models", lambda *args: None)  # keep what is written here
    parsed = []
    original = support_module.loads_yaml
    monkeypatch.setattr(support_module, "loads_yaml",
                        lambda *args: parsed.append(1) or original(*args))
    entry.write_bytes(pickle.dumps({"not": "models"}, protocol=5))
    assert load_support([DEMO]).models == expected and len(parsed) == 1
    entry.write_bytes(pickle.dumps([os.getcwd], protocol=5))  # a callable: not unpickled
    assert load_support([DEMO]).models == expected and len(parsed) == 2
    entry.write_bytes(good)
    entry.chmod(0o666)  # writable by others: not trusted
    assert load_support([DEMO]).models == expected and len(parsed) == 3
    entry.chmod(0o600)
    assert load_support([DEMO]).models == expected and len(parsed) == 3


def test_unpicklable_models_are_not_stored(cache, monkeypatch):
    original = support_module.read_support

    def with_lambda(*args: Any) -> list[EntityModel]:
        models = original(*args)
        models[0].parameters["name"].values = {"f": lambda: None}
        return models

    monkeypatch.setattr(support_module, "read_support", with_lambda)
    assert "demo.Port" in load_support([DEMO]).models
    assert not cache.exists() or list(cache.iterdir()) == []


def test_files_with_problems_are_not_stored(cache, tmp_path):
    path = tmp_path / "bad.ibek.support.yaml"
    path.write_text("module: m\nentity_models:\n  - name: A\n    description: a\n    oops: 1\n")
    for _ in range(2):
        with pytest.raises(BerthError, match=f"{path}:5:5"):
            load_support([path])
    assert entries(cache) == []
    path.write_text("module: m\nentity_models: [\n")
    with pytest.raises(BerthError, match="invalid YAML"):
        load_support([path])
    assert entries(cache) == []


def test_missing_and_non_utf8_files_report_as_before(cache, tmp_path):
    missing = tmp_path / "missing.ibek.support.yaml"
    with pytest.raises(BerthError, match=f"{missing}: cannot read file"):
        load_support([missing])
    latin = tmp_path / "latin.ibek.support.yaml"
    latin.write_bytes(b"module: m\ndescription: \xe9\n")
    with pytest.raises(BerthError, match=f"{latin}: file is not UTF-8 text"):
        load_support([latin])
    assert entries(cache) == []


def test_no_cache_setting(cache, monkeypatch):
    monkeypatch.setenv("BERTH_NO_CACHE", "1")
    assert SupportCache.open() is None
    load_support([DEMO])
    assert not cache.exists()
    monkeypatch.setenv("BERTH_NO_CACHE", "0")
    load_support([DEMO])
    assert len(entries(cache)) == 1


def test_cache_folder_lookup(monkeypatch, tmp_path):
    monkeypatch.setenv("BERTH_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("BERTH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "berth" / "support"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "berth" / "support"


def test_suite_uses_a_temporary_cache(_support_cache_dir):
    assert os.environ["BERTH_CACHE_DIR"] == str(_support_cache_dir)
    assert Path.home() / ".cache" not in _support_cache_dir.parents


def test_instance_file_comes_from_the_cache_until_it_changes(cache, tmp_path, monkeypatch):
    import berth.yamlio

    instance = tmp_path / "ioc.yaml"
    instance.write_text(DEMO_IOC)
    cold = outputs(instance, [DEMO], OPTIONS)
    with monkeypatch.context() as mp:
        no_parsing(mp)
        mp.setattr(berth.yamlio, "loads_yaml", support_module.loads_yaml)  # (fails)
        assert outputs(instance, [DEMO], OPTIONS) == cold  # nothing parsed: all cached
    # an edit (with CRLF line ends, which load_yaml reads as LF) is parsed again
    edited = DEMO_IOC.replace("host: h1:1", "host: h9:9").replace("\n", "\r\n")
    instance.write_bytes(edited.encode())
    warm_edited = outputs(instance, [DEMO], OPTIONS)
    with monkeypatch.context() as mp:
        mp.setenv("BERTH_NO_CACHE", "1")
        plain = outputs(instance, [DEMO], OPTIONS)
    assert warm_edited == plain != cold
    assert '"h9:9"' in plain["st.cmd"]
