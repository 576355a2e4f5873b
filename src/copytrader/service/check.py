"""`copytrader check [--json]`: which accounts connect, and exactly why the others do not.

Safe to run next to the running daemon (locally or inside its container): it uses the same data
folder, so every private call takes the account's nonce lock and nonce file, and requests of one
key still reach Kraken in nonce order. It never places or cancels anything: order permissions are
probed with a validate-only AddOrder and a cancel of a client order id that cannot exist.

Exit status: 0 when MASTER and every enabled user connected, 1 when some enabled user did not,
2 when MASTER did not (or the configuration could not be read).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from copytrader.config.settings import load_settings
from copytrader.config.types import AccountSpec, Settings
from copytrader.errors import ConfigError
from copytrader.logs import LEVELS, configure_logging
from copytrader.nonce.store import nonce_file_name
from copytrader.service.lifecycle import ensure_writable_data_dir
from copytrader.service.probe import (
    AccountOutcome,
    AccountState,
    ProbeDepth,
    Reason,
    make_broker,
)
from copytrader.service.startup import StartupReport, connect_accounts

EXIT_OK = 0
EXIT_USER_NOT_CONNECTED = 1
EXIT_MASTER_NOT_CONNECTED = 2
# A one-shot report: users connect side by side, a short stagger only spreads the first requests.
CHECK_STAGGER_S = 0.2
CHECK_TIMEOUT_S = 10.0


def run_from_args(args: argparse.Namespace) -> int:
    """Entry of `copytrader check`; returns the exit status."""
    as_json = bool(getattr(args, "json", False))
    try:
        settings = load_settings()
    except ConfigError as error:
        return _config_failure(error, as_json)
    # The report owns stdout; log lines (broker retries, nonce jumps) go to stderr, and only
    # warnings and worse unless LOG_LEVEL asks for more.
    level = settings.log_level if LEVELS[settings.log_level] > LEVELS["info"] else "warning"
    configure_logging(level, settings.log_format, stream=sys.stderr)
    try:
        ensure_writable_data_dir(settings.data_dir)
    except ConfigError as error:
        return _config_failure(error, as_json)
    report = connect_accounts(
        settings,
        stagger_s=min(settings.copy.connect_stagger_seconds, CHECK_STAGGER_S),
        broker_factory=lambda spec, s: make_broker(spec, s, timeout_s=CHECK_TIMEOUT_S),
        depth=ProbeDepth.FULL,  # the full report; `run` probes only what starting needs
        emit_log=False,
    )
    try:
        status = exit_status(report)
        document = build_document(settings, report, status)
        if as_json:
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        else:
            print_table(document, sys.stdout)
        sys.stdout.flush()
        return status
    finally:
        for outcome in report.all:
            if outcome.broker is not None:
                outcome.broker.close()


def exit_status(report: StartupReport) -> int:
    if not report.master.connected:
        return EXIT_MASTER_NOT_CONNECTED
    if any(o.reason is not Reason.DISABLED and not o.connected for o in report.users):
        return EXIT_USER_NOT_CONNECTED
    return EXIT_OK


def _config_failure(error: ConfigError, as_json: bool) -> int:
    if as_json:
        document = {"ok": False, "exit_status": EXIT_MASTER_NOT_CONNECTED, "error": str(error)}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stderr.write(f"copytrader check: configuration error: {error}\n")
    return EXIT_MASTER_NOT_CONNECTED


def build_document(settings: Settings, report: StartupReport, status: int) -> dict[str, Any]:
    """The whole report as one JSON-able document (what --json prints)."""
    accounts = [
        _account_entry(spec, outcome, settings.data_dir)
        for spec, outcome in zip(settings.accounts, report.all, strict=True)
    ]
    enabled = [o for o in report.users if o.reason is not Reason.DISABLED]
    return {
        "ok": status == EXIT_OK,
        "exit_status": status,
        "summary": (
            f"MASTER {report.master.state.value}; {len(report.ready_users)} of {len(enabled)}"
            " enabled users connected"
        ),
        "config": str(settings.config_path),
        "dotenv": str(settings.dotenv_path) if settings.dotenv_path else None,
        "data_dir": str(settings.data_dir),
        "api_url": settings.api_url,
        "dry_run": settings.copy.dry_run,
        "kill_switch": settings.kill_switch_env,
        "notes": list(settings.notes),
        "accounts": accounts,
    }


def _account_entry(spec: AccountSpec, outcome: AccountOutcome, data_dir: Path) -> dict[str, Any]:
    nonce_path = data_dir / nonce_file_name(spec.account_id)
    return {
        "account": spec.account_id,
        "name": spec.display_name,
        "enabled": spec.enabled,
        "key_var": spec.key_var,
        "secret_var": spec.secret_var,
        "key_set": spec.key_var not in spec.missing_vars,
        "secret_set": spec.secret_var not in spec.missing_vars,
        "key_hint": spec.credentials.key_hint if spec.credentials else None,
        "state": outcome.state.value,
        "reason": outcome.reason.value,
        "message": outcome.message,
        "equity": str(outcome.equity) if outcome.equity is not None else None,
        "equity_asset": outcome.equity_asset or None,
        "balances": {asset: str(amount) for asset, amount in sorted(outcome.balances.items())},
        "permissions": outcome.permissions.as_dict(),
        "missing_permissions": list(outcome.missing_permissions),
        "warnings": list(outcome.warnings),
        "nonce_file": str(nonce_path),
        "nonce_last": _read_nonce(nonce_path),
        "elapsed_s": outcome.elapsed_s,
    }


def _read_nonce(path: Path) -> int | None:
    """The nonce file's value, read without its lock (a report must not wait on the daemon). The
    file is rewritten in place, so a read that lands mid-write can see a partial number; the value
    is informational only and never used to sign anything."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


_STATE_MARK = {
    AccountState.CONNECTED.value: "connected",
    AccountState.SKIPPED.value: "SKIPPED",
    AccountState.FAILED.value: "FAILED",
}


def print_table(document: dict[str, Any], out: TextIO) -> None:
    """The report for a person: a table, then one paragraph per account, then the verdict."""
    out.write(f"config   {document['config']}\n")
    if document["dotenv"]:
        out.write(f".env     {document['dotenv']}\n")
    out.write(f"data     {document['data_dir']}\n")
    out.write(f"Kraken   {document['api_url']}\n")
    flags = [name for name in ("dry_run", "kill_switch") if document[name]]
    if flags:
        out.write(f"switches {', '.join(flags)}\n")
    out.write("\n")
    rows = [("ACCOUNT", "NAME", "VARIABLES", "STATE", "EQUITY", "MISSING PERMISSIONS")]
    for entry in document["accounts"]:
        variables = (
            "set"
            if entry["key_set"] and entry["secret_set"]
            else "not set"
            if not entry["key_set"] and not entry["secret_set"]
            else "half set"
        )
        equity = f"{entry['equity']} {entry['equity_asset']}" if entry["equity"] else "-"
        state = _STATE_MARK[entry["state"]]
        if not entry["enabled"]:
            state = "disabled"
        rows.append(
            (
                entry["account"],
                entry["name"],
                variables,
                state,
                equity,
                ", ".join(entry["missing_permissions"]) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write(line.rstrip() + "\n")
    out.write("\n")
    for entry in document["accounts"]:
        out.write(f"{entry['message']}\n")
        if entry["balances"]:
            balances = ", ".join(f"{asset} {amount}" for asset, amount in entry["balances"].items())
            out.write(f"    balances: {balances}\n")
        for warning in entry["warnings"]:
            out.write(f"    warning: {warning}\n")
        last = entry["nonce_last"]
        nonce_state = f"last nonce {last}" if last is not None else "not created yet"
        out.write(f"    nonce file: {entry['nonce_file']} ({nonce_state})\n")
    for note in document["notes"]:
        out.write(f"note: {note}\n")
    out.write(f"\n{document['summary']} (exit status {document['exit_status']})\n")
