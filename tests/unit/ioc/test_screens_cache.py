"""The cache of a generation's screens: a warm run gives the same files without drawing them;
an edited device file, or one newly found earlier in the search path, is drawn again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from berth.ioc.generate import GenerateOptions, generate

DATA = Path(__file__).parents[2] / "data" / "generate"
DEMO = DATA / "demo.ibek.support.yaml"
DEVICE = DATA / "demo.pvi.device.yaml"
IOC = 'ioc_name: scr\nentities:\n  - {type: demo.Screen, P: "SCR:"}\n'


def screens(tmp_path: Path, search: list[Path]) -> dict[str, str]:
    instance = tmp_path / "ioc.yaml"
    instance.write_text(IOC)
    out = generate([instance], [DEMO], GenerateOptions(ioc_name="scr", pvi_defs=search))
    return out.pvi_files()


def no_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("screens drawn although the cache had them")

    monkeypatch.setattr("berth.screens.ioc_screens", refuse)


def test_warm_run_gives_the_same_files_without_drawing(cache: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    shutil.copy(DEVICE, defs)
    with monkeypatch.context() as mp:
        mp.setenv("BERTH_NO_CACHE", "1")
        plain = screens(tmp_path, [defs])
    cold = screens(tmp_path, [defs])
    with monkeypatch.context() as mp:
        no_drawing(mp)
        warm = screens(tmp_path, [defs])
    assert plain == cold == warm
    assert "demo.pvi.bob" in warm and "index.bob" in warm and "demo.pvi.template" in warm


def test_edited_device_file_is_drawn_again(cache: Path, tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    device = defs / DEVICE.name
    shutil.copy(DEVICE, device)
    before = screens(tmp_path, [defs])
    text = device.read_text()
    assert "label:" in text
    device.write_text(text.replace("label:", "label: Edited", 1).replace(
        "label: Edited ", "label: Edited", 1))
    after = screens(tmp_path, [defs])
    assert after != before
    assert "Edited" in after["demo.pvi.bob"]


def test_device_file_appearing_earlier_in_the_search_is_used(cache: Path,
                                                             tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(DEVICE, second)
    before = screens(tmp_path, [first, second])
    (first / DEVICE.name).write_text(DEVICE.read_text().replace("label:", "label: Nearer", 1))
    after = screens(tmp_path, [first, second])
    assert "Nearer" not in before["demo.pvi.bob"] and "Nearer" in after["demo.pvi.bob"]
