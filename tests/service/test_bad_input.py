"""Bad input to any command ends in one clear line and exit 2, never in a Python traceback.

Each command runs as a real subprocess in a scratch folder (no config there unless a test writes
one) with a clean environment; every case fails before anything starts, so each takes about as
long as Python's start.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import secretscan
from tests.service.daemonproc import clean_environment

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 30.0  # generous: each case needs well under a second


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def _run(command: Sequence[str], *, cwd: Path, env: Mapping[str, str], name: str = "") -> Outcome:
    done = subprocess.run(
        list(command),
        cwd=cwd,
        env=clean_environment(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    secretscan.record_output(name or " ".join(command), done.stdout + done.stderr)
    return Outcome(done.returncode, done.stdout, done.stderr)


def _copytrader(*args: str) -> list[str]:
    return [sys.executable, "-m", "copytrader", *args]


def _assert_one_clear_line(outcome: Outcome, *fragments: str) -> str:
    """Exit 2, no traceback anywhere, and exactly one line on stderr holding `fragments`."""
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything
    assert outcome.code == 2, everything
    assert len(outcome.stderr_lines) == 1, everything
    line = outcome.stderr_lines[0]
    for fragment in fragments:
        assert fragment in line, line
    return line


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# A case: the command's arguments, the extra variables, something to put in the scratch folder
# first (given the folder, returns nothing), and the fragments the one error line must hold.
Setup = Callable[[Path], object]
CONFIG_ERROR_CASES = [
    pytest.param(
        ("run", "--paper", "--duration", "5"),
        {"LOG_LEVEL": "loud"},
        None,
        ("copytrader: configuration error", "environment", "'LOG_LEVEL'", "'loud'"),
        id="paper-bad-log-level",
    ),
    pytest.param(
        ("run", "--paper", "--duration", "5"),
        {},
        lambda folder: _write(folder / ".env", "LOG_LEVEL=shouty\n"),
        ("configuration error", ".env", "'LOG_LEVEL'", "'shouty'"),
        id="paper-bad-log-level-in-dotenv",
    ),
    pytest.param(
        ("run", "--paper", "--duration", "5"),
        {"COPYTRADER_DATA_DIR": "not-a-folder"},
        lambda folder: _write(folder / "not-a-folder", "a file\n"),
        ("configuration error", "not-a-folder", "is a file", "COPYTRADER_DATA_DIR"),
        id="paper-data-dir-is-a-file",
    ),
    pytest.param(
        ("run", "--paper", "--duration", "5"),
        {"COPYTRADER_DATA_DIR": "a-file/data"},
        lambda folder: _write(folder / "a-file", "a file\n"),
        ("configuration error", "a-file/data", "is a file"),
        id="paper-data-dir-below-a-file",
    ),
    pytest.param(
        ("run",),
        {"LOG_LEVEL": "loud"},
        None,
        ("copytrader: configuration error", "'LOG_LEVEL'"),
        id="run-bad-log-level",
    ),
    pytest.param(
        ("run",),
        {},
        lambda folder: _write(folder / "config" / "accounts.toml", "[[users]\n"),
        ("configuration error", "config/accounts.toml", "not valid TOML"),
        id="run-broken-config",
    ),
    pytest.param(
        ("check",),
        {"LOG_LEVEL": "loud"},
        None,
        ("copytrader check: configuration error", "'LOG_LEVEL'"),
        id="check-bad-log-level",
    ),
    pytest.param(
        ("check",),
        {},
        lambda folder: _write(folder / "config" / "accounts.toml", "[[users]\n"),
        ("copytrader check: configuration error", "config/accounts.toml", "not valid TOML"),
        id="check-broken-config",
    ),
    pytest.param(
        ("check",),
        {},
        lambda folder: (
            _write(folder / "config" / "accounts.toml", ""),
            _write(
                folder / "config" / "users" / "kraken.json",
                '[{"user_id": "Tania Gilbert", "broker_type": "kraken"}]',
            ),
        ),
        ("configuration error", "config/users/kraken.json", "[0]", "'user_id'"),
        id="check-broken-legacy-users",
    ),
    pytest.param(
        ("sim", "--accounts", "sim.toml"),
        {},
        lambda folder: _write(folder / "sim.toml", "[[accounts]\n"),
        ("copytrader sim", "sim.toml", "not valid TOML"),
        id="sim-broken-accounts",
    ),
    pytest.param(
        ("sim", "--accounts", "sim.toml"),
        {},
        lambda folder: _write(folder / "sim.toml", '[[accounts]]\nname = "m"\n'),
        ("copytrader sim", "sim.toml", "accounts[0]", "'key'"),
        id="sim-incomplete-account",
    ),
    pytest.param(
        ("sim", "--accounts", "missing.toml"),
        {},
        None,
        ("copytrader sim", "missing.toml", "not found"),
        id="sim-missing-accounts",
    ),
]


@pytest.mark.parametrize(("args", "env", "setup", "fragments"), CONFIG_ERROR_CASES)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    setup: Setup | None,
    fragments: tuple[str, ...],
) -> None:
    """A bad variable, .env, data folder or accounts file: one line naming it on stderr, exit 2,
    and nothing started (paper mode makes no data folder, so it started no child either)."""
    if setup is not None:
        setup(tmp_path)
    outcome = _run(_copytrader(*args), cwd=tmp_path, env=env)
    _assert_one_clear_line(outcome, *fragments)
    assert outcome.stdout == ""
    assert not (tmp_path / "data").exists()


BAD_ARGUMENTS = [
    pytest.param(("sim", "--accounts", "a.toml", "--port", "70000"), "--port", id="port-too-big"),
    pytest.param(("sim", "--accounts", "a.toml", "--port", "-1"), "--port", id="port-negative"),
    pytest.param(("sim", "--accounts", "a.toml", "--latency-ms", "nan"), "--latency-ms", id="nan"),
    pytest.param(("sim", "--accounts", "a.toml", "--latency-ms", "-5"), "--latency-ms", id="neg"),
    pytest.param(("run", "--duration", "inf"), "--duration", id="duration-inf"),
    pytest.param(("run", "--paper", "--duration", "0"), "--duration", id="paper-duration-0"),
]


@pytest.mark.parametrize(("args", "option"), BAD_ARGUMENTS)
def test_bad_numbers_on_the_command_line_are_usage_errors(
    tmp_path: Path, args: tuple[str, ...], option: str
) -> None:
    """A port out of range or a number that is not finite is refused by the argument parser
    (usage line, one error line, exit 2) before the socket or timer it is for sees it."""
    outcome = _run(_copytrader(*args), cwd=tmp_path, env={})
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything
    assert outcome.code == 2, everything
    assert outcome.stderr_lines[0].startswith("usage: copytrader"), everything
    error = outcome.stderr_lines[-1]
    assert error.startswith(f"copytrader {args[0]}: error: argument {option}:"), everything


def _venv_running_this_checkout(venv: Path) -> Path:
    """A venv whose python imports this checkout with this interpreter's packages, and whose
    install stamp tells start.sh not to install (so nothing is downloaded or changed here)."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    python = venv / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run(
        [str(python), "-c", ask], check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    Path(site, "checkout.pth").write_text(f"{REPO / 'src'}\n{sysconfig.get_path('purelib')}\n")
    (venv / ".copytrader-run-installed").touch()
    return python


def test_start_sh_paper_with_a_bad_log_level_is_one_line(tmp_path: Path) -> None:
    """`LOG_LEVEL=loud ./start.sh --paper`: the operator sees one line naming LOG_LEVEL, exit 2."""
    _venv_running_this_checkout(tmp_path / "venv")
    outcome = _run(
        [str(REPO / "start.sh"), "--paper", "--duration", "5"],
        cwd=tmp_path,
        env={
            "VENV": str(tmp_path / "venv"),
            "LOG_LEVEL": "loud",
            "COPYTRADER_DATA_DIR": str(tmp_path / "data"),
        },
        name="start.sh --paper (LOG_LEVEL=loud)",
    )
    _assert_one_clear_line(outcome, "copytrader: configuration error", "'LOG_LEVEL'", "'loud'")
    assert not (tmp_path / "data").exists()
