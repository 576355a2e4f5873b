"""The deployment files say what the daemon needs: a Railway IaC file that keeps every secret and
stops a deployment gently, and an image that installs exactly the locked versions.

The TypeScript check runs when `.railway/node_modules` is installed (`scripts/check-railway-ts.sh`
installs it from npm and runs the same check); every other test reads only the repository.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from copytrader.config.accounts_file import read_accounts_file
from copytrader.config.settings import user_key_vars

REPO = Path(__file__).resolve().parents[1]
RAILWAY_DIR = REPO / ".railway"
RAILWAY_TS = RAILWAY_DIR / "railway.ts"
LOCK = REPO / "requirements.lock"
DOCKERFILE = REPO / "Dockerfile"
# The daemon's own variables; the RAILWAY_* ones it reads are set by Railway in every deployment.
ENV_NAME = re.compile(r"^(?:KRAKEN|COPYTRADER|LOG)_[A-Z0-9_]*[A-Z0-9]$")


def _pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _locked() -> dict[str, tuple[Version, int]]:
    """requirements.lock as {canonical name: (pinned version, number of hashes)}."""
    pins: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line)
        if pin:
            current = canonicalize_name(pin.group(1))
            assert current not in pins, f"{current} is pinned twice in requirements.lock"
            pins[current] = (Version(pin.group(2)), 0)
        elif line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _credential_vars() -> set[str]:
    """Every API key variable the daemon reads for the shipped config/accounts.toml."""
    from copytrader.config import settings

    names = {
        settings.MASTER_KEY_VAR,
        settings.MASTER_SECRET_VAR,
        settings.LEGACY_KEY_VAR,
        settings.LEGACY_SECRET_VAR,
    }
    accounts = read_accounts_file(REPO / "config" / "accounts.toml", "config/accounts.toml")
    for user in accounts.users:
        names.update(user_key_vars(user.env_name))
    return names


def _config_vars() -> set[str]:
    """The fixed variable names the config package reads (it is the only reader of the
    environment), found as string constants in its source."""
    names: set[str] = set()
    for path in (REPO / "src" / "copytrader" / "config").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and ENV_NAME.match(value):
                names.add(value)
    return names


def test_no_config_as_code_file_is_shipped() -> None:
    """Railway stopped reading railway.json / railway.toml on 2026-12-01, and a service that
    still has one cannot be managed by .railway/railway.ts: the repository ships neither."""
    stale = [
        str(p.relative_to(REPO))
        for name in ("railway.json", "railway.toml")
        for p in REPO.rglob(name)
        if not {".venv", "node_modules", ".git"} & set(p.relative_to(REPO).parts)
    ]
    assert stale == []
    assert RAILWAY_TS.is_file()


def test_lock_pins_every_dependency_within_pyproject_ranges() -> None:
    """Each runtime dependency and build requirement of pyproject.toml is in requirements.lock
    at a version its range allows, with hashes: a lock older than pyproject.toml fails here."""
    project = _pyproject()
    wanted = [Requirement(r) for r in project["project"]["dependencies"]]
    wanted += [Requirement(r) for r in project["build-system"]["requires"]]
    pins = _locked()
    problems = []
    for req in wanted:
        if req.marker is not None and not req.marker.evaluate({"python_version": "3.11"}):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req} is not in requirements.lock")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{req} but requirements.lock pins {name}=={pins[name][0]}")
    assert problems == [], "run scripts/lock.sh:\n" + "\n".join(problems)
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert unhashed == [], f"no --hash for {unhashed}: pip --require-hashes would refuse them"


def test_image_installs_only_the_lock_on_a_pinned_base() -> None:
    """The Dockerfile installs requirements.lock with hashes enforced and builds the project
    offline, on an exact Python release."""
    instructions = re.sub(r"\s*\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    runs = [line for line in instructions.splitlines() if line.startswith("RUN ")]
    pip_runs = [run for run in runs if "pip install" in run]
    assert pip_runs == [
        "RUN pip install --require-hashes --no-deps -r requirements.lock",
        "RUN pip install --no-index --no-build-isolation --no-deps . "
        "&& rm -rf build src && chmod 0755 /app/start.sh",
    ]
    bases = re.findall(r"^FROM (\S+)", instructions, flags=re.MULTILINE)
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", bases[0])
    assert 'CMD ["python", "-m", "copytrader.service.health"]' in instructions
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert "requirements.lock" not in ignored
    assert ".railway" in ignored  # node_modules must not reach the build context


def _env_entries(source: str) -> dict[str, str]:
    """`NAME: value,` entries of railway.ts's variable objects, by name."""
    return dict(re.findall(r"^\s*([A-Z][A-Z0-9_]+):\s*(.+?),?\s*$", source, flags=re.MULTILINE))


def test_railway_ts_preserves_every_secret_and_operator_variable() -> None:
    """`railway config apply` deletes service variables the file does not name; every key
    pair (MASTER, legacy, each USER of config/accounts.toml) and every variable the config
    reads is named, and secrets only as preserve(), never with a value."""
    entries = _env_entries(RAILWAY_TS.read_text(encoding="utf-8"))
    for name in sorted(_credential_vars()):
        assert entries.get(name) == "preserve()", f"{name} must be `{name}: preserve()`"
    missing = sorted(_config_vars() - set(entries))
    assert missing == [], f"variables the daemon reads but railway.ts would delete: {missing}"


def test_railway_ts_stops_deployments_gently_with_numbers() -> None:
    """30 s between SIGTERM and SIGKILL and no overlap, as `deploy` numbers and as the
    documented service variables; no start command (it would replace tini); the deploy
    healthcheck is the daemon's /healthz."""
    source = RAILWAY_TS.read_text(encoding="utf-8")
    code = "\n".join(line.split("//")[0] for line in source.splitlines())
    assert re.search(r"\bdrainingSeconds:\s*30,", code)
    assert re.search(r"\boverlapSeconds:\s*0,", code)
    assert re.search(r"\brestartPolicyType:\s*\"ON_FAILURE\",", code)
    entries = _env_entries(code)
    assert entries["RAILWAY_DEPLOYMENT_DRAINING_SECONDS"] == '"30"'
    assert entries["RAILWAY_DEPLOYMENT_OVERLAP_SECONDS"] == '"0"'
    for field in ("start", "startCommand", "healthcheckPath", "replicas"):
        assert not re.search(rf"\b{field}:", code), f"railway.ts sets {field}"
    assert re.search(r'\bhealthcheck:\s*"/healthz",', code)
    assert re.search(r"\bhealthcheckTimeout:\s*\d+,", code)


def _node_tools() -> tuple[str, Path]:
    node = shutil.which("node")
    tsc = RAILWAY_DIR / "node_modules" / ".bin" / "tsc"
    if node is None or not tsc.exists() or not (RAILWAY_DIR / "node_modules" / "tsx").is_dir():
        pytest.skip("needs node and .railway/node_modules: run scripts/check-railway-ts.sh")
    return node, tsc


EVALUATE = """
import { pathToFileURL } from "node:url";
const mod = await import(pathToFileURL(process.argv[2]).href);
process.stdout.write(JSON.stringify(await mod.default({})));
"""


@pytest.mark.timeout(180)
def test_railway_ts_type_checks_and_evaluates_to_the_intended_service(tmp_path: Path) -> None:
    """railway.ts passes `tsc --noEmit` against the `railway` package's own types, and the
    project it evaluates to (what `railway config plan` compares) is the intended one."""
    node, tsc = _node_tools()
    checked = subprocess.run(
        [str(tsc), "--noEmit", "-p", str(RAILWAY_DIR)],
        cwd=RAILWAY_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    script = tmp_path / "evaluate.mjs"
    script.write_text(EVALUATE, encoding="utf-8")
    evaluated = subprocess.run(
        [node, "--import", "tsx", str(script), str(RAILWAY_TS)],
        cwd=RAILWAY_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    project = json.loads(evaluated.stdout)
    services = [r for r in project["resources"] if r["type"] == "service"]
    volumes = [r for r in project["resources"] if r["type"] == "volume"]
    assert len(services) == 1
    assert len(volumes) == 1
    svc = services[0]
    assert svc["source"]["type"] == "github"
    assert svc["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
    assert (REPO / svc["build"]["dockerfilePath"]).is_file()
    assert svc["deploy"] == {
        "restartPolicyType": "ON_FAILURE",
        "restartPolicyMaxRetries": 10,
        "drainingSeconds": 30,
        "overlapSeconds": 0,
        "healthcheckPath": "/healthz",
        "healthcheckTimeout": 300,
    }
    assert [(a["volume"], a["mountPath"]) for a in svc["volumeAttachments"].values()] == [
        (volumes[0]["address"], "/data")
    ]
    variables = svc["variables"]
    for name in _credential_vars():
        assert variables[name] == {"type": "preserve"}, name
    assert variables["RAILWAY_DEPLOYMENT_DRAINING_SECONDS"] == {"type": "literal", "value": "30"}
    assert variables["RAILWAY_DEPLOYMENT_OVERLAP_SECONDS"] == {"type": "literal", "value": "0"}
    literal = {n for n, v in variables.items() if v["type"] != "preserve"}
    assert literal == {"RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "RAILWAY_DEPLOYMENT_OVERLAP_SECONDS"}
