"""When a fan-out stops starting tenants: fail-fast, a failure budget, a canary wave, a stop request.

:class:`StopPolicy` only decides; the fan-out asks it before starting each
tenant and tells it each outcome. Tenants already running always finish.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import anyio

from ..exceptions import ConfigError
from .model import Tenant
from .report import TenantResult

__all__ = ["StopPolicy", "failure_budget", "waves"]


def failure_budget(max_failures: int | float | None, total: int, fail_fast: bool) -> int | None:
    """How many failures stop the run (None: no limit)."""
    if fail_fast:
        return 1
    if max_failures is None:
        return None
    if isinstance(max_failures, float) and 0 < max_failures < 1:
        return max(1, math.ceil(max_failures * total))
    if max_failures < 1:
        raise ConfigError("max_failures must be a count >= 1 or a fraction between 0 and 1")
    return int(max_failures)


def waves(tenants: Sequence[Tenant], canary: int | None) -> list[Sequence[Tenant]]:
    """The waves tenants start in: the canary first, when there is one."""
    if canary:
        return [tenants[:canary], tenants[canary:]]
    return [tenants]


class StopPolicy:
    """Count failures and say why the run stops starting tenants (``stopped``), if it does."""

    def __init__(self, budget: int | None, fail_fast: bool, stop: anyio.Event | None) -> None:
        self._budget = budget
        self._fail_fast = fail_fast
        self._stop = stop
        self.failures = 0
        self.stopped: str | None = None

    def record(self, result: TenantResult) -> None:
        """Take a tenant's outcome into account."""
        if result.status != "failed":
            return
        self.failures += 1
        if self._budget is not None and self.failures >= self._budget and self.stopped is None:
            self.stopped = (
                "fail-fast: a tenant failed" if self._fail_fast
                else f"failure budget reached ({self.failures} failed)"
            )

    def may_start(self) -> bool:
        """Whether another tenant may start now."""
        if self._stop is not None and self._stop.is_set() and self.stopped is None:
            self.stopped = "stopped on request"
        return self.stopped is None

    def final(self, cancelled: bool) -> str | None:
        """Why the run stopped, for its report: :attr:`stopped`, and whether it was then cancelled."""
        self.may_start()
        if cancelled:
            return f"{self.stopped}, then cancelled" if self.stopped else "cancelled"
        return self.stopped

    def after_wave(self, index: int, wave_size: int, canary: bool) -> None:
        """A wave has finished: a failed canary wave stops the run."""
        if canary and index == 0 and self.failures and self.stopped is None:
            self.stopped = f"canary wave failed ({self.failures} of {wave_size} tenants)"
        self.may_start()
