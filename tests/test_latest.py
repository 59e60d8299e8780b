"""The keep-latest handoff the pipeline, the UI bridge and the calibration feed share."""

from __future__ import annotations

import threading
import time

from inspector.latest import Latest


def test_newest_wins_and_replaced_items_are_counted():
    slot: Latest[int] = Latest()
    assert slot.put(1) is None
    assert slot.put(2) == 1 and slot.put(3) == 2
    assert slot.dropped == 2 and len(slot) == 1
    assert slot.take() == 3 and slot.take() is None and slot.delivered == 1


def test_gated_slot_holds_the_next_item_until_the_last_is_acknowledged():
    slot: Latest[str] = Latest(gated=True)
    slot.put("a")
    assert slot.take() == "a"
    slot.put("b")
    assert slot.take() is None and not slot.wait(0.01)  # "a" not acknowledged yet
    slot.ack()
    assert slot.wait(0.01) and slot.take() == "b"


def test_poke_wakes_the_consumer_without_replacing_a_waiting_item():
    slot: Latest[str | None] = Latest()
    slot.put("picture")
    slot.poke(None)
    assert slot.take() == "picture" and slot.dropped == 0
    slot.poke(None)
    assert len(slot) == 1 and slot.take() is None and len(slot) == 0


def test_close_wakes_a_waiting_consumer_and_open_keeps_what_arrived():
    slot: Latest[int] = Latest(gated=True)
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(slot.take(10.0)))
    t.start()
    time.sleep(0.05)
    slot.close()
    t.join(2.0)
    assert not t.is_alive() and got == [None]
    slot.put(7)
    assert slot.take() is None  # closed
    slot.open()
    assert slot.take() == 7
