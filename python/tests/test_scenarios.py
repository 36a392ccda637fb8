"""The shared scenarios (tests/scenarios.json), with the blocking client and with the asyncio one.

Timing scenarios (rates, waits) run once, blocking, so that the suite stays fast on two cores.
"""

from __future__ import annotations

from typing import Any, Dict

import pytest

from .scenario_runner import Run, load

DATA = load()
SCENARIOS: Dict[str, Dict[str, Any]] = {s["id"]: s for s in DATA["scenarios"]}


@pytest.mark.parametrize("scenario_id", sorted(SCENARIOS))
def test_scenario_blocking(scenario_id: str) -> None:
    Run(SCENARIOS[scenario_id], DATA["defaults"], use_async=False).run()


@pytest.mark.parametrize("scenario_id", sorted(k for k, s in SCENARIOS.items() if not s.get("timing")))
def test_scenario_asyncio(scenario_id: str) -> None:
    Run(SCENARIOS[scenario_id], DATA["defaults"], use_async=True).run()
