"""pytest plugin: the ``lfb_conformance`` fixture, to run the router conformance suite in your CI.

Installed with lfbtheory (entry point ``pytest11``), so the fixture is available in any test
with no configuration; importing this module defines one fixture and nothing else (no
options, no hooks), so it is harmless when unused. Usage::

    def test_my_router_conforms(lfb_conformance):
        report = lfb_conformance(make_my_router())           # fails the test, listing properties
        assert "causality" in report.passed                  # strict: no property may be skipped

    def test_my_gate(lfb_conformance):                       # a torch gate, one-line wrap
        lfb_conformance(from_torch(MyGate(), update="update_bias", rule=updates.sign(1e-3)))

    @pytest.mark.parametrize("prop", lfbtheory.testing.conformance.PROPERTIES)
    def test_property(lfb_conformance, prop):                # one test per named property
        lfb_conformance(make_my_router(), only=[prop])

Without the entry point (e.g. lfbtheory vendored), add ``pytest_plugins =
["lfbtheory.testing.pytest_plugin"]`` to your conftest.py or run
``pytest -p lfbtheory.testing.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest


@pytest.fixture
def lfb_conformance() -> Callable[..., Any]:
    """``check(router, *, only=None, config=None, strict=True) -> ConformanceReport``;
    calls ``pytest.fail`` with the report when a property fails, when a router with a bias was
    not checked by every bias property (coverage gap), or -- ``strict`` (the default) -- when
    a property was skipped for a missing capability. ``strict=False`` accepts such skips
    (they stay listed in the report); properties that do not apply (N/A) never fail."""

    def check(
        router: Any,
        *,
        only: Iterable[str] | None = None,
        config: Any = None,
        strict: bool = True,
    ) -> Any:
        from lfbtheory.testing.conformance import run_conformance

        report = run_conformance(router, only=only, config=config)
        if not (report.strict_ok if strict else report.ok):
            extra = ""
            if strict and report.missing:
                extra = "\nskipped for a missing capability (strict): " + ", ".join(report.missing)
            pytest.fail(str(report) + extra, pytrace=False)
        return report

    return check
