"""The kill switch: a file in the data folder, or an environment variable, stops new copies."""

from __future__ import annotations

import threading
from pathlib import Path

from copytrader.logs import get_logger

log = get_logger(__name__)

KILL_SWITCH_FILE_NAME = "KILL_SWITCH"


class KillSwitch:
    """Copying stops while `<data_dir>/KILL_SWITCH` exists or COPYTRADER_KILL_SWITCH is set.

    Checked before every copy is sent, so creating the file stops the next copy without a
    restart or redeploy; removing it resumes (signals older than max_signal_age are skipped).
    """

    def __init__(self, data_dir: Path, *, from_environment: bool = False) -> None:
        self.path = data_dir / KILL_SWITCH_FILE_NAME
        self.from_environment = from_environment
        self._was_on = False
        self._lock = threading.Lock()

    def reason(self) -> str | None:
        """Why copying is stopped, or None when it is not."""
        if self.from_environment:
            why: str | None = "kill switch on (COPYTRADER_KILL_SWITCH)"
        elif self.path.exists():
            why = f"kill switch on (file {self.path})"
        else:
            why = None
        with self._lock:
            changed, self._was_on = (why is not None) != self._was_on, why is not None
        if changed:
            if why:
                log.warning("copy.kill_switch_on", message=f"{why}: no new copies are sent")
            else:
                log.info("copy.kill_switch_off", message="kill switch off: copying resumes")
        return why
