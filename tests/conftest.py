"""Suite-wide hooks: collect every test's captured output for the final secret scan."""

from __future__ import annotations

import pytest

from tests import secretscan

LAST_TEST_FILE = "test_zz_no_secret_in_logs.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the secret scan after every other test, whatever order pytest collected them in."""
    items.sort(key=lambda item: item.path.name == LAST_TEST_FILE)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for section_name, content in report.sections:
        secretscan.record_output(f"{report.nodeid} [{section_name}]", content)
    if report.longreprtext:
        secretscan.record_output(f"{report.nodeid} [failure]", report.longreprtext)
