"""Command-line parameter types shared by the commands."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click

__all__ = ["Seconds"]

if TYPE_CHECKING:  # generic in click's types since 8.2; plain at run time on click 8.1
    _ParamType = click.ParamType[float]
else:
    _ParamType = click.ParamType


class Seconds(_ParamType):
    """A finite number of seconds, at least zero (above zero with ``positive``)."""

    name = "seconds"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        bound = "above 0" if self.positive else "0 or more"
        if not math.isfinite(number) or number < 0 or (self.positive and number == 0):
            self.fail(f"{value!r} is not a number of seconds {bound}", param, ctx)
        return number
