"""`./start.sh` from a clean clone: it makes its own venv, and paper mode copies to every user."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.service.daemonproc import clean_environment, start_logged

REPO = Path(__file__).resolve().parents[2]
DEMO_USERS = ("alice_demo", "bob_demo", "carol_demo")


@pytest.fixture
def clean_clone(tmp_path: Path) -> Path:
    """The repository's HEAD, cloned: no venv, no data, no untracked file."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
        check=True,
        timeout=60,
    )
    return clone


def _borrowed_venv(clone: Path, venv: Path) -> None:
    """A venv that runs the clone's code with the packages of the venv running these tests.

    Cheaper than `pip install` (the real bootstrap has its own test); the install stamp tells
    start.sh that the project is installed.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", ask], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    ours = sysconfig.get_path("purelib")
    (site / "borrowed.pth").write_text(f"{clone / 'src'}\n{ours}\n")
    (venv / ".copytrader-run-installed").touch()


@pytest.mark.slow
@pytest.mark.timeout(300)  # pip may have to download the dependencies on a new machine
def test_fresh_clone_makes_its_own_venv_and_installs_the_project(clean_clone: Path) -> None:
    """With no .venv, start.sh creates one, installs the project and runs the command in it."""
    env = clean_environment({})
    env.pop("VENV", None)  # the clone's own .venv, never a developer's shared one
    result = subprocess.run(
        ["./start.sh", "check", "--help"],
        cwd=clean_clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage: copytrader check" in result.stdout
    assert (clean_clone / ".venv" / "bin" / "python").exists()
    installed = subprocess.run(
        [str(clean_clone / ".venv" / "bin" / "python"), "-c",
         "import copytrader, krakenex, structlog; print(copytrader.__file__)"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert str(clean_clone / "src") in installed.stdout
    # A second run finds everything in place and does not install again.
    again = subprocess.run(
        ["./start.sh", "check", "--help"],
        cwd=clean_clone, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0
    assert "installing" not in again.stderr


def _json_lines(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_paper_mode_from_clean_clone_copies_to_every_demo_user(
    clean_clone: Path, tmp_path: Path
) -> None:
    """`./start.sh --paper --duration 20` copies master orders to every demo user, logs only
    JSON lines, ends with a summary and exits 0."""
    venv = tmp_path / "venv"
    _borrowed_venv(clean_clone, venv)
    paper = start_logged(
        "start.sh --paper",
        ["./start.sh", "--paper", "--duration", "20"],
        cwd=clean_clone,
        env=clean_environment({"VENV": str(venv), "COPYTRADER_DATA_DIR": str(tmp_path / "data")}),
    )
    try:
        code = paper.wait(60)
    finally:
        paper.kill()
    tail = "\n".join(paper.lines[-40:])
    assert code == 0, tail
    events = _json_lines(paper.lines)  # every line is one JSON object
    names = [e["event"] for e in events]
    placed_for = {e.get("user") for e in events if e["event"] == "copy.placed"}
    assert set(DEMO_USERS) <= placed_for, f"copies placed for {placed_for}:\n{tail}"
    demo = [e for e in events if e["event"] == "demo.master_order"]
    assert {e["order_type"] for e in demo} == {"market", "limit"}
    assert {e["side"] for e in demo} == {"buy", "sell"}
    summary = next(e for e in events if e["event"] == "paper.summary")
    assert names[-1] == "paper.summary"
    assert summary["reason"] == "duration"
    assert summary["daemon_exit_code"] == 0
    assert summary["master_orders_seen"] >= 1
    assert summary["copies_placed"] >= len(DEMO_USERS)
    assert summary["copy_latency_ms_median"] is not None
    assert summary["copy_latency_ms_worst"] >= summary["copy_latency_ms_median"]
    assert all(summary["by_user"][u]["placed"] >= 1 for u in DEMO_USERS)
    assert (tmp_path / "data" / "paper").is_dir()
