"""The serial read from the board's DataMatrix on the PLC: SERIAL_ECHO, and the two serial REJECT codes.

A real station (replay camera, difference detector, PLC link on 127.0.0.1) and a PLC on pyModbusTCP;
the codes are real DataMatrix symbols made by zxing-cpp and pasted on real synthetic boards.
"""

from __future__ import annotations

import json

import cv2
from plc_testkit import Plc

from inspector.board_serial import paste_code
from inspector.config import BoardCode, Recipe
from plc import registers as R


def echo(st: list[int]) -> str:
    i = R.SERIAL_ECHO - R.STATUS_BASE
    return R.decode_ascii(st[i : i + R.SERIAL_REGS])


def test_plc_sees_the_board_serial_and_serial_rejects(tmp_path, demo_boards, demo_truth):
    clean = [n for n in sorted(demo_truth) if not demo_truth[n]][:3]
    boards = tmp_path / "coded"
    boards.mkdir()
    for name, serial in zip(clean, ["SN-A", "SN-B", None], strict=True):  # replayed in this order, then again
        img = cv2.imread(str(demo_boards / f"{name}_test.png"), cv2.IMREAD_GRAYSCALE)
        if serial:
            img, _ = paste_code(img, serial, (560, 8))
        cv2.imwrite(str(boards / f"{name}_test.png"), img)
        (boards / f"{name}_temp.png").write_bytes((demo_boards / f"{name}_temp.png").read_bytes())
    (boards / "truth.json").write_text(json.dumps({n: [] for n in clean}))
    recipe = Recipe(code=BoardCode(region=(560, 8, 72, 72), require_code=True))
    from plc_testkit import start_station

    st = start_station(boards, recipes=[recipe])
    try:
        plc = Plc(st.port)
        try:
            plc.set_bits(R.TRIGGER_ENABLE)
            plc.wait_bits(on=R.READY, timeout=20)

            ok = plc.board(1, "SN-A")  # PLC and board agree
            assert ok["passed"] and ok["code"] == 0 and echo(ok["status"]) == "SN-A"

            plc.wait_bits(on=R.READY)
            wrong = plc.board(2, "SN-WRONG")  # board SN-B, PLC says otherwise
            assert wrong["rejected"] and wrong["code"] == R.RESULT_SERIAL_MISMATCH
            assert echo(wrong["status"]) == "SN-B" and wrong["echo"] == 2

            plc.wait_bits(on=R.READY)
            bare = plc.board(3, "PLC-C")  # no code on the board, the recipe requires one
            assert bare["rejected"] and bare["code"] == R.RESULT_CODE_UNREADABLE
            assert echo(bare["status"]) == "PLC-C"

            plc.wait_bits(on=R.READY)
            no_plc_serial = plc.board(4, "")  # the PLC gives none: the board's code is the serial
            assert no_plc_serial["passed"] and echo(no_plc_serial["status"]) == "SN-A"
            st.pipeline.stop()
            by_part = st.sink.by_part()
            assert by_part[2].reason == "serial mismatch: code 'SN-B', PLC 'SN-WRONG'"
            assert by_part[3].reason.startswith("board code unreadable") and by_part[3].board_serial == "PLC-C"
            assert by_part[4].board_serial == "SN-A"
        finally:
            plc.close()
    finally:
        st.stop()
