"""Alarms the operator must acknowledge: camera lost, PLC down, model failed, disk low, database.

Why separate from the status lamps: a lamp shows the state *now*; an alarm remembers that something
went wrong even if it recovered a second later, until a person has seen it (ISA-18.2 style: an
alarm is raised on the transition to bad, stays until acknowledged, and an acknowledged alarm that
is still active shows only on its lamp). Runs in the GUI thread; fed by `UiBridge.health_changed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from inspector.capture.supervisor import WAITING_FOR_FIRST_FRAME
from inspector.health import ComponentState

from .controller import STOPPED_BY_OPERATOR

#: Reasons that mean "not ready yet", not a fault: no alarm for them. A free-running camera reopened by START after
#: STOP waits for its first frame: raised as "Camera lost", that normal restart needed an acknowledgement.
STARTUP_REASONS = {"starting", "loading", WAITING_FOR_FIRST_FRAME}

#: NOT READY because a person asked for it (STOP on the Line screen; ui.controller sets it): their own action is no
#: alarm. Raised as "Inspection failed", it stayed after START until acknowledged, and taught operators to acknowledge
#: banners unread.
OPERATOR_REASONS = {STOPPED_BY_OPERATOR}

#: Alarm title per component (translated at display time, see `alarm_title`).
ALARM_TITLES = {
    "camera": "Camera lost",
    "plc": "PLC down",
    "model": "Model failed",
    "disk": "Disk low",
    "database": "Database error",
    "pipeline": "Inspection failed",
    "recipe": "Recipe problem",
    "registration": "Board alignment failed",
    "image": "Camera image unusable",
    "repeat": "Same defect, board after board",
    "calibration": "Camera calibration and optics",
}


def alarm_title(component: str) -> str:
    titles = {
        "camera": QCoreApplication.translate("Alarms", "Camera lost"),
        "plc": QCoreApplication.translate("Alarms", "PLC down"),
        "model": QCoreApplication.translate("Alarms", "Model failed"),
        "disk": QCoreApplication.translate("Alarms", "Disk low"),
        "database": QCoreApplication.translate("Alarms", "Database error"),
        "pipeline": QCoreApplication.translate("Alarms", "Inspection failed"),
        "recipe": QCoreApplication.translate("Alarms", "Recipe problem"),
        "registration": QCoreApplication.translate("Alarms", "Board alignment failed"),
        "image": QCoreApplication.translate("Alarms", "Camera image unusable"),
        "repeat": QCoreApplication.translate("Alarms", "Same defect, board after board"),
        "calibration": QCoreApplication.translate("Alarms", "Camera calibration and optics"),
    }
    return titles.get(component, QCoreApplication.translate("Alarms", "Fault: %1").replace("%1", component))


@dataclass(slots=True)
class Alarm:
    component: str
    reason: str
    raised_at: datetime = field(default_factory=datetime.now)
    active: bool = True
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def title(self) -> str:
        return alarm_title(self.component)


class AlarmModel(QObject):
    changed = Signal()
    acknowledged = Signal(list, str)
    """(alarms acknowledged, user): the app writes the audit record."""

    def __init__(self, ignore: set[str] | None = None, startup_grace_s: float = 15.0):
        super().__init__()
        self.startup_grace_s = startup_grace_s
        self._pending: dict[str, ComponentState] = {}
        self._ever_ok: set[str] = set()
        self._ok: dict[str, bool] = {}
        self._alarms: list[Alarm] = []
        self.ignore = ignore or set()
        self.history: list[Alarm] = []

    def on_health(self, state: ComponentState) -> None:
        self._ok[state.name] = state.ok
        if state.ok:
            self._ever_ok.add(state.name)
            self._pending.pop(state.name, None)
            for a in self._alarms:
                if a.component == state.name:
                    a.active = False
            # Only this component's acknowledged alarms are done. Another component's acknowledged alarm is
            # still active: dropping it here would raise it again as new on the next change of its wording.
            self._alarms = [a for a in self._alarms if a.active or a.acknowledged_by is None]
            self.changed.emit()
            return
        if state.reason in STARTUP_REASONS | OPERATOR_REASONS or state.reason.startswith("ENGINEER_EDITING"):
            return
        if state.name in self.ignore:
            return
        current = [a for a in self._alarms if a.component == state.name and a.active]
        if current:
            # Same fault, new wording (e.g. reconnect attempts): update the text, do not re-raise.
            for a in current:
                a.reason = state.reason
            self.changed.emit()
            return
        if state.name not in self._ever_ok:
            # Never seen healthy: a part still coming up (PLC not yet polling, model loading).
            # Alarm only if it is still bad after the grace period.
            first = state.name not in self._pending
            self._pending[state.name] = state
            if first:
                QTimer.singleShot(int(self.startup_grace_s * 1000), lambda n=state.name: self._grace_over(n))
            return
        self._raise(state)

    def _grace_over(self, name: str) -> None:
        state = self._pending.pop(name, None)
        if state is not None and self._ok.get(name) is False:
            self._raise(state)

    def _raise(self, state: ComponentState) -> None:
        alarm = Alarm(state.name, state.reason)
        self._alarms.append(alarm)
        self.history.append(alarm)
        del self.history[:-200]
        self.changed.emit()

    @property
    def unacknowledged(self) -> list[Alarm]:
        return [a for a in self._alarms if a.acknowledged_by is None]

    @property
    def alarms(self) -> list[Alarm]:
        return list(self._alarms)

    def acknowledge_all(self, user: str) -> list[Alarm]:
        now = datetime.now()
        done = self.unacknowledged
        for a in done:
            a.acknowledged_by = user
            a.acknowledged_at = now
        # Acknowledged and already cleared: gone. Acknowledged but active: only its lamp stays red.
        self._alarms = [a for a in self._alarms if a.active]
        if done:
            self.acknowledged.emit(done, user)
        self.changed.emit()
        return done
