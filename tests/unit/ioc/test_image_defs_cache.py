"""The image-definitions cache without an engine: found by image reference, and only when
nobody else could have written it."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.ioc import image_defs


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "image-defs"
    monkeypatch.setenv("BERTH_IMAGE_DEFS_DIR", str(root))
    digest = "sha256:" + "ab" * 32
    folder = root / ("sha256-" + "ab" * 32)
    (folder / "ibek-defs").mkdir(parents=True)
    (folder / "ibek-defs" / "m.ibek.support.yaml").write_text("module: m\nentity_models: []\n")
    (folder / "support" / "m" / "db").mkdir(parents=True)
    (root / "names").mkdir()
    for path in (root, root / "names", folder):
        path.chmod(0o700)
    name_file = image_defs.name_file_of(root, "example.org/ioc:1")
    name_file.write_text(f"{digest}\nexample.org/ioc:1\n")
    name_file.chmod(0o600)
    return root


def test_found_by_reference_with_its_files(cache: Path) -> None:
    found = image_defs.cached("example.org/ioc:1")
    assert found is not None and found.origin == "cache"
    assert [p.name for p in found.defs] == ["m.ibek.support.yaml"]
    assert [p.parent.name for p in found.db_dirs] == ["m"]
    assert found.dbd is None
    assert image_defs.cached("example.org/ioc:2") is None


@pytest.mark.parametrize("which", ["root", "name"])
def test_a_cache_others_can_write_is_not_read(cache: Path, which: str) -> None:
    path = cache if which == "root" else next((cache / "names").iterdir())
    path.chmod(0o722 if which == "root" else 0o622)
    assert image_defs.cached("example.org/ioc:1") is None
