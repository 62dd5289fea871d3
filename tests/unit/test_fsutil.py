"""fsutil's bounded reader and all-or-nothing folder writes (issue 12)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from berth import fsutil


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(fsutil.UnreadableFile, match="named pipe"):
        fsutil.read_bytes(fifo)
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused(device):
    with pytest.raises(fsutil.UnreadableFile, match="a device"):
        fsutil.read_bytes(device)


def test_a_file_over_the_limit_is_refused_and_one_at_it_is_read(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert fsutil.read_bytes(path, limit=100) == b"x" * 100
    with pytest.raises(fsutil.UnreadableFile, match="too large"):
        fsutil.read_bytes(path, limit=99)


def test_read_text_has_universal_newlines(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a\r\nb\rc\n")
    assert fsutil.read_text(path) == "a\nb\nc\n"


def test_write_folder_swaps_in_new_outputs_and_keeps_the_rest(tmp_path):
    out = tmp_path / "out"
    fsutil.write_folder(out, {out / "st.cmd": "old\n", out / "opi" / "a.bob": "old\n"})
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(out / "console.sock"))  # a live socket of a running IOC stays reachable
    server.listen(1)
    (out / "autosave").mkdir()
    (out / "autosave" / "x.sav").write_text("saved\n")
    before = os.stat(out).st_ino
    fsutil.write_folder(out, {out / "st.cmd": "new\n", out / "opi" / "a.bob": "new\n"},
                        remove=[out / "wait_list.yaml"])
    assert os.stat(out).st_ino != before, "not switched as one folder"
    assert (out / "st.cmd").read_text() == "new\n"
    assert (out / "opi" / "a.bob").read_text() == "new\n"
    assert (out / "autosave" / "x.sav").read_text() == "saved\n"
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(out / "console.sock"))
    client.close()
    server.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_reader_never_sees_old_and_new_files_mixed(tmp_path):
    out = tmp_path / "out"
    names = [f"f{i}" for i in range(20)]
    fsutil.write_folder(out, {out / n: "0\n" for n in names})
    seen: set[frozenset[str]] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # one folder, read through
            except FileNotFoundError:
                continue
            try:
                contents = set()
                for n in names:
                    with open(f"/proc/self/fd/{fd}/{n}") as f:
                        contents.add(f.read())
                seen.add(frozenset(contents))
            except FileNotFoundError:
                pass  # this folder was swapped out and is being deleted: a retired version
            finally:
                os.close(fd)

    reader = threading.Thread(target=read)
    reader.start()
    for version in range(1, 40):
        fsutil.write_folder(out, {out / n: f"{version}\n" for n in names})
    stop.set()
    reader.join()
    assert seen and all(len(s) == 1 for s in seen), f"mixed: {[s for s in seen if len(s) > 1]}"


def test_a_folder_in_the_way_is_refused_and_nothing_changes(tmp_path):
    out = tmp_path / "out"
    fsutil.write_folder(out, {out / "a": "1\n"})
    (out / "b").mkdir()
    with pytest.raises(IsADirectoryError):
        fsutil.write_folder(out, {out / "a": "2\n", out / "b": "2\n"})
    assert (out / "a").read_text() == "1\n" and (out / "b").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_link_to_the_output_folder_stays_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep").write_text("kept\n")
    link = tmp_path / "runtime"
    link.symlink_to(real)
    fsutil.write_folder(link, {link / "st.cmd": "new\n"})
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / "st.cmd").read_text() == "new\n" and (real / "keep").read_text() == "kept\n"
