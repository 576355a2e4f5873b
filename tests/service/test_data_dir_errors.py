"""`copytrader run` with a data folder it cannot use: one clear error event and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RUN_TIMEOUT_S = 30.0


def test_a_data_folder_below_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "accounts.toml").write_text(
        '[copy]\nsizing = "equity_ratio"\n[[users]]\nid = "idle_user"\n'
    )
    (tmp_path / "a-file").write_text("not a folder\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "COPYTRADER_DATA_DIR": "a-file/data",
    }
    done = subprocess.run(
        [sys.executable, "-m", "copytrader", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e.get("event") == "daemon.config_error"]
    assert len(errors) == 1
    assert "a-file/data" in errors[0]["message"]
    assert "COPYTRADER_DATA_DIR" in errors[0]["message"]
