"""The spool's reserve journal: durable batches on a full disk, written in place, replayed, zeroed.

The full disk is a real 1 MB tmpfs (needs root to mount; skipped otherwise). The torn-write case
needs no mount: the bytes a crash could leave are written into a real journal file.
"""

from __future__ import annotations

import json

import pytest

from inspector.storage.spool import RESERVE, Spool


@pytest.fixture
def full_volume(tmp_path, mount_tmpfs):
    return mount_tmpfs(tmp_path / "vol", "1m")


def _fill(folder):
    with open(folder / "filler.bin", "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(1 << 14))
        except OSError:
            pass


def _rec(i: int) -> dict:
    return {"uid": f"u{i:04d}", "verdict": "REJECT", "defects": [], "archive_error": None}


def test_full_disk_batches_go_into_the_reserve_in_place(full_volume):
    spool = Spool(full_volume / "spool", reserve_bytes=64 * 1024)
    assert spool.ensure_reserve()
    _fill(full_volume)
    with pytest.raises(OSError):
        Spool(full_volume / "other").write([_rec(0)])  # without a reserve: ENOSPC, as before
    assert spool.write([_rec(1), _rec(2)]) == spool.journal
    assert spool.write([_rec(3)], images={}) == spool.journal
    assert spool.batches() == [spool.journal] and len(spool) == 1
    # A new Spool (the next start after a SIGKILL) finds them.
    again = Spool(full_volume / "spool", reserve_bytes=64 * 1024)
    assert [r["uid"] for r in again.read(again.journal)] == ["u0001", "u0002", "u0003"]
    again.remove(again.journal, again.read(again.journal))
    assert again.batches() == []
    data = again.journal.read_bytes()
    assert len(data) == 64 * 1024 and not data.strip(b"\0"), "zeroed in place: still reserved"
    assert again.write([_rec(4)]) == again.journal, "the disk is still full: the reserve takes the next batch"


def test_reserve_full_raises_enospc_naming_it(full_volume):
    spool = Spool(full_volume / "spool", reserve_bytes=1024)
    assert spool.ensure_reserve()
    _fill(full_volume)
    big = [_rec(i) | {"reason": "x" * 300} for i in range(5)]
    with pytest.raises(OSError, match="spool reserve full"):
        spool.write(big)


def test_no_room_for_the_reserve_is_a_warning_not_an_error(full_volume, caplog):
    _fill(full_volume)
    spool = Spool(full_volume / "spool", reserve_bytes=64 * 1024)
    with caplog.at_level("WARNING"):
        assert not spool.ensure_reserve()
    assert "no room for the spool reserve" in caplog.text
    assert not (full_volume / "spool" / (RESERVE + ".tmp")).exists()


def test_torn_tail_is_dropped_and_stray_bytes_zeroed(tmp_path):
    spool = Spool(tmp_path / "spool", reserve_bytes=8192)
    assert spool.ensure_reserve()
    good = (json.dumps(_rec(1)) + "\n").encode()
    torn = b'{"uid":"u0002","verd'
    stray = b"GARBAGE-FROM-A-POWER-CUT"
    with open(spool.journal, "r+b") as f:
        f.write(good + torn)
        f.seek(4096)
        f.write(stray)
    again = Spool(tmp_path / "spool", reserve_bytes=8192)
    assert [r["uid"] for r in again.read(again.journal)] == ["u0001"], "the torn record was never acknowledged"
    assert stray not in again.journal.read_bytes(), "bytes past the first zero are cleared"
    again.remove(again.journal, [])
    assert not again.journal.read_bytes().strip(b"\0")


def test_a_spill_during_the_journal_replay_is_kept(full_volume):
    """On a full disk the writer replays the journal (read, insert, remove) while the inference thread spills a
    result into it (acknowledged as durable at once): the removal must not zero the record that came after the
    read. Played in the order the two threads can take; the journal lock serialises each call, not the span."""
    spool = Spool(full_volume / "spool", reserve_bytes=64 * 1024)
    assert spool.ensure_reserve()
    _fill(full_volume)
    assert spool.write([_rec(1), _rec(2)]) == spool.journal
    replayed = spool.read(spool.journal)  # the writer thread: these go into the database now
    assert spool.write([_rec(3)]) == spool.journal  # the inference thread: a spill, acknowledged durable
    spool.remove(spool.journal, replayed)
    after_restart = Spool(full_volume / "spool", reserve_bytes=64 * 1024)
    left = [r["uid"] for p in after_restart.batches() for r in after_restart.read(p)]
    assert "u0003" in left, "the spilled record is still in the journal"
    again = spool.read(spool.journal)  # the next replay: everything, the inserted ones skipped by uid
    spool.remove(spool.journal, again)
    assert spool.batches() == [], "nothing came in meanwhile: cleared"
