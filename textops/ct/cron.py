"""A standard 5-field cron expression, parsed and matched in local time (no dependency)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from textops.ct.state import LoopError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise LoopError(f"cron {name} field {text!r}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()):
                raise LoopError(f"cron {name} field {text!r}: {part!r} is not a range like 1-5 (names are not supported)")
            start, end = int(a), int(b)
        elif part.isdigit():
            start = end = int(part)
            if step != 1:
                end = high  # "5/15" means 5, 20, 35, 50 as in Vixie cron
        else:
            raise LoopError(f"cron {name} field {text!r}: {part!r} is not a number, range, list or * (names are not supported)")
        if start < low or end > high or start > end:
            raise LoopError(f"cron {name} field {text!r}: values must lie in {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class Cron:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week), local time.

    Supports ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists. Day of week
    0 and 7 are Sunday. When both day fields are restricted, a day matching either one fires
    (as in Vixie cron).
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    dom_any: bool
    dow_any: bool

    @classmethod
    def parse(cls, expression: str) -> "Cron":
        fields = expression.split()
        if len(fields) != 5:
            raise LoopError(
                f"cron expression {expression!r} has {len(fields)} fields; give 5: minute hour day-of-month month day-of-week, "
                "e.g. '*/15 * * * *' or '0 3 * * *'"
            )
        parsed = [_parse_field(f, name, lo, hi) for f, (name, lo, hi) in zip(fields, _FIELDS)]
        weekdays = frozenset(0 if d == 7 else d for d in parsed[4])
        return cls(expression, *parsed[:4], weekdays, fields[2] == "*", fields[4] == "*")

    def _day_matches(self, t: dt.datetime) -> bool:
        if t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_any or self.dow_any:
            return dom and dow
        return dom or dow

    def matches(self, t: dt.datetime) -> bool:
        return self._day_matches(t) and t.hour in self.hours and t.minute in self.minutes

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``t`` (searches at most ~5 years ahead)."""
        t = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if not self._day_matches(t):
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in self.hours:
                t = (t + dt.timedelta(hours=1)).replace(minute=0)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        raise LoopError(f"cron expression {self.expression!r} never fires (e.g. 31 February)")
