"""aod_core.files: atomic writes leave what ``open(path, "w")`` would, never half a file."""

import os
import stat

import pytest

from aod_core.files import atomic_write_bytes, atomic_write_text


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test (tests run in one thread), then restore it."""
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def test_a_symlink_stays_a_link_to_the_replaced_file(tmp_path):
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "config.json"
    real.write_text("old")
    link = tmp_path / "config.json"
    link.symlink_to(os.path.join("data", "config.json"))  # relative, as users make them
    chain = tmp_path / "chain.json"
    chain.symlink_to(link)
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == os.path.join("data", "config.json")
    assert real.read_text() == "new" and not real.is_symlink()
    atomic_write_bytes(chain, b"newer")  # a link to a link: the file at the end is replaced
    assert chain.is_symlink() and link.is_symlink() and real.read_text() == "newer"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["chain.json", "config.json", "config.json", "data"]


def test_a_dangling_symlink_gets_its_file(tmp_path):
    link = tmp_path / "out.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    atomic_write_text(link, "x")
    assert link.is_symlink() and (tmp_path / "elsewhere.jsonl").read_text() == "x"


def test_an_existing_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "shared.json"
    path.write_text("old")
    for m in (0o644, 0o640, 0o600, 0o664):
        path.chmod(m)
        atomic_write_text(path, "new")
        assert mode(path) == m and path.read_text() == "new"


def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, umask):
    for i, mask in enumerate((0o022, 0o027, 0o002, 0o077)):
        umask(mask)
        plain = tmp_path / f"plain{i}"
        with open(plain, "w") as f:
            f.write("x")
        atomic_write_text(tmp_path / f"atomic{i}", "x")
        assert mode(tmp_path / f"atomic{i}") == mode(plain) == 0o666 & ~mask


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_text("old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
