"""The PLC register map: addresses, bits and the encodings a PLC programmer has to match.

Why constants in one module: the server, the client, the simulator, the tests and docs/plc.md must
agree to the bit. Addresses are 0-based PDU addresses (holding register 40001 is address 0).
32-bit values are big-endian, high word first; ASCII takes 2 characters per register, the first in
the high byte, NUL-padded. Never move an address: PLC programs in the field depend on them.
"""

from __future__ import annotations

from collections.abc import Sequence

MAP_VERSION = 2  # 2: SERIAL_ECHO (122-141) and the serial result codes

# ------------------------------------------------------------------ control block (PLC -> station)
CONTROL = 0
COMMAND_RECIPE = 1
PART_SEQ = 2  # u32, 2 registers
SERIAL = 4  # 20 registers = 40 characters
SERIAL_REGS = 20
SERIAL_CHARS = SERIAL_REGS * 2
CONTROL_BASE = 0
CONTROL_SIZE = 24

# CONTROL bits
TRIGGER_ENABLE = 1 << 0
TRIGGER = 1 << 1
RESULTS_ACK = 1 << 2
CLEAR_ERROR = 1 << 3
EXECUTE_COMMAND = 1 << 4
SET_OFFLINE = 1 << 5
PLC_HEARTBEAT = 1 << 6

CONTROL_BITS: dict[str, int] = {
    "TRIGGER_ENABLE": TRIGGER_ENABLE,
    "TRIGGER": TRIGGER,
    "RESULTS_ACK": RESULTS_ACK,
    "CLEAR_ERROR": CLEAR_ERROR,
    "EXECUTE_COMMAND": EXECUTE_COMMAND,
    "SET_OFFLINE": SET_OFFLINE,
    "PLC_HEARTBEAT": PLC_HEARTBEAT,
}

# ------------------------------------------------------------------ status block (station -> PLC)
STATUS = 100
CURRENT_RECIPE = 101
ERROR_CODE = 102
ACQ_ID = 103
INSP_ID = 104
RESULT_CODE = 105
DEFECT_COUNT = 106
MAX_SCORE = 107
CYCLE_MS = 108
PART_SEQ_ECHO = 109  # u32, 2 registers
HEARTBEAT_COUNT = 111
CLASS_COUNTS = 112  # 6 registers, one per class in CLASS_NAMES order
CLASS_COUNT_REGS = 6
# Extensions past the map (additive; never move the ones above).
RESULT_QUEUE = 118  # results waiting for RESULTS_ACK, including the one shown
MISSED_TRIGGER_COUNT = 119  # u16, wraps
OVERRUN_COUNT = 120  # results discarded because the queue was full (u16, wraps)
MAP_VERSION_REG = 121
SERIAL_ECHO = 122  # 20 registers: serial of the board shown (read from its code, else the PLC's SERIAL)
STATUS_BASE = 100
STATUS_SIZE = 42

# STATUS bits
READY = 1 << 0
TRIGGER_ACK = 1 << 1
BUSY = 1 << 2
RESULTS_VALID = 1 << 3
PASS = 1 << 4
REJECT = 1 << 5
ERROR = 1 << 6
ONLINE = 1 << 7
STATION_HEARTBEAT = 1 << 8
CMD_DONE = 1 << 9
CMD_FAILED = 1 << 10
MISSED_TRIGGER = 1 << 11
RESULTS_OVERRUN = 1 << 12
ENGINEER_EDITING = 1 << 13
TRIGGER_HELD = 1 << 14  # extension: TRIGGER was still set trigger_hold_timeout_s after TRIGGER_ACK

STATUS_BITS: dict[str, int] = {
    "READY": READY,
    "TRIGGER_ACK": TRIGGER_ACK,
    "BUSY": BUSY,
    "RESULTS_VALID": RESULTS_VALID,
    "PASS": PASS,
    "REJECT": REJECT,
    "ERROR": ERROR,
    "ONLINE": ONLINE,
    "STATION_HEARTBEAT": STATION_HEARTBEAT,
    "CMD_DONE": CMD_DONE,
    "CMD_FAILED": CMD_FAILED,
    "MISSED_TRIGGER": MISSED_TRIGGER,
    "RESULTS_OVERRUN": RESULTS_OVERRUN,
    "ENGINEER_EDITING": ENGINEER_EDITING,
    "TRIGGER_HELD": TRIGGER_HELD,
}

#: RESULT_CODE of a REJECT that has no defect class: no image, inspection failed, timed out,
#: fault during the board, or a class-agnostic detector.
RESULT_NO_CLASS = 255
#: RESULT_CODE of a REJECT because the code read on the board differs from the PLC's SERIAL.
RESULT_SERIAL_MISMATCH = 253
#: RESULT_CODE of a REJECT because the recipe requires a board code and none could be read.
RESULT_CODE_UNREADABLE = 254

#: Function codes the station serves; anything else is answered with ILLEGAL_FUNCTION.
READ_FUNCTIONS = frozenset({3, 23})
WRITE_FUNCTIONS = frozenset({6, 16, 23})
SERVED_FUNCTIONS = READ_FUNCTIONS | WRITE_FUNCTIONS

U16 = 0xFFFF


def check_u16(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= U16:
        raise ValueError(f"{what}: {value!r} does not fit a 16-bit register (0..65535)")
    return value


def encode_u32(value: int, what: str = "u32 value") -> list[int]:
    """[high word, low word]: big-endian, high word first (e.g. 305419896 -> [0x1234, 0x5678])."""
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"{what}: {value!r} does not fit 32 bits unsigned (0..4294967295)")
    return [(value >> 16) & U16, value & U16]


def decode_u32(regs: Sequence[int]) -> int:
    if len(regs) != 2:
        raise ValueError(f"a u32 needs 2 registers, got {len(regs)}")
    hi, lo = (check_u16(int(r), "u32 register") for r in regs)
    return (hi << 16) | lo


def encode_ascii(text: str, regs: int, what: str = "text") -> list[int]:
    """2 characters per register, the first in the high byte, NUL-padded to `regs` registers."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what}: {text!r} is not ASCII (position {exc.start})") from None
    if len(raw) > regs * 2:
        raise ValueError(f"{what}: {len(raw)} characters do not fit {regs} registers ({regs * 2} max)")
    raw = raw.ljust(regs * 2, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def decode_ascii(regs: Sequence[int]) -> str:
    """Text up to the first NUL; bytes outside printable ASCII become '?' so a log line stays readable."""
    out = bytearray()
    for r in regs:
        r = check_u16(int(r), "ASCII register")
        for b in (r >> 8, r & 0xFF):
            if b == 0:
                return _printable(out)
            out.append(b)
    return _printable(out)


def _printable(raw: bytearray) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in raw)


def bits_named(word: int, names: dict[str, int]) -> list[str]:
    """Names of the set bits, for logs and violation messages."""
    return [n for n, m in names.items() if word & m]


def clamp_u16(value: float) -> int:
    return max(0, min(U16, int(round(value))))
