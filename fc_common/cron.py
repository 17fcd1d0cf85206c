"""FC's timer expressions, read the same way by the provider (validation at preview) and the agent (firing).

FC writes ``cronExpression`` as robfig/cron v3 with seconds does:

- six fields, seconds first, in UTC: ``0 */5 * * * *``; ``?`` means ``*``; names (JAN, MON) are accepted;
- a ``CRON_TZ=Area/City`` (or ``TZ=``) prefix for another time zone;
- ``@every 5m`` (a Go duration: h, m, s, combined as ``1h30m``), anchored at the Unix epoch so that every host
  computes the same ticks without sharing state (``@every 5m`` fires at :00, :05, ...);
- ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``), ``@hourly``.

The fields are parsed by cronsim (maintained, seconds-first natively, fires once in a DST fold); this module is
the front end for what cronsim does not read. Ticks are tz-aware datetimes; callers key them by their UTC instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TZ_PREFIX = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$", re.S)


class CronError(ValueError):
    """The expression is not one FC accepts; the message names the field and the rule."""


@dataclass(frozen=True)
class Schedule:
    expression: str  # as written
    fields: str | None  # the six cron fields, ? rewritten; None for @every
    every: timedelta | None
    zone: ZoneInfo | timezone

    def ticks_after(self, moment: datetime) -> Iterator[datetime]:
        """Scheduled instants strictly after ``moment`` (tz-aware), in order, in the schedule's zone."""
        moment = moment.astimezone(self.zone)
        if self.every is not None:
            step = self.every.total_seconds()
            n = int(moment.timestamp() // step) + 1
            while True:
                yield datetime.fromtimestamp(n * step, self.zone)
                n += 1
        # cronsim yields instants >= its start: start one microsecond later for "strictly after"
        yield from CronSim(self.fields, moment.replace(microsecond=0) + timedelta(seconds=1)
                           if moment.microsecond == 0 else moment)

    def next_after(self, moment: datetime) -> datetime:
        return next(self.ticks_after(moment))

    def previous_at_or_before(self, moment: datetime, horizon: timedelta) -> datetime | None:
        """The last tick at or before ``moment`` and later than ``moment - horizon`` (None when there is none)."""
        found = None
        for tick in self.ticks_after(moment - horizon):
            if tick > moment:
                return found
            found = tick
        return found  # pragma: no cover - ticks_after is endless


def parse(expression: str, *, field: str = "cronExpression") -> Schedule:
    """Reads an FC cron expression (a timer trigger's ``cronExpression``; ``field`` names it in errors: a
    provision config's scheduled action reads its six fields here too); raises CronError naming what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise CronError(f"{field} is empty; write six fields (seconds first), @every <duration> or @daily")
    text = expression.strip()
    zone: ZoneInfo | timezone = timezone.utc
    if m := _TZ_PREFIX.match(text):
        try:
            zone = ZoneInfo(m.group(1))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CronError(f"CRON_TZ={m.group(1)} is not a known time zone (write Area/City, e.g. "
                            "Asia/Shanghai)") from exc
        text = m.group(2).strip()
    if text.startswith("@every"):
        return Schedule(expression, None, _every(text[len("@every"):].strip()), zone)
    if text.startswith("@"):
        if text not in DESCRIPTORS:
            raise CronError(f"unknown descriptor {text!r}; use @every <duration> or one of "
                            f"{', '.join(sorted(DESCRIPTORS))}")
        text = DESCRIPTORS[text]
    parts = text.split()
    if len(parts) != 6:
        raise CronError(f"{field} has {len(parts)} fields; FC's has 6: {' '.join(FIELDS)} (seconds first)")
    parts = ["*" if p == "?" else p for p in parts]
    fields = " ".join(parts)
    for name, part in zip(FIELDS, parts):  # cronsim names the field; say what it was given too
        probe = ["*"] * 6
        probe[FIELDS.index(name)] = part
        try:
            CronSim(" ".join(probe), datetime(2000, 1, 1, tzinfo=timezone.utc))
        except (CronSimError, ValueError) as exc:
            raise CronError(f"{field} field {name} {part!r} is invalid ({exc})") from exc
    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=timezone.utc))
    except (CronSimError, ValueError) as exc:
        raise CronError(f"{field} {expression!r} is invalid: {exc}") from exc
    return Schedule(expression, fields, None, zone)


def _every(duration: str) -> timedelta:
    m = _DURATION.match(duration)
    if not duration or not m or not any(m.groups()):
        raise CronError(f"@every takes a duration such as 5m, 1h30m or 90s; got {duration!r}")
    hours, minutes, seconds = (int(g or 0) for g in m.groups())
    delta = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if delta < timedelta(seconds=1):
        raise CronError("@every needs a duration of at least 1s")
    return delta


def period(schedule: Schedule, around: datetime) -> timedelta:
    """The gap between the tick after ``around`` and the one after it: the catch-up horizon."""
    first = schedule.next_after(around)
    return schedule.next_after(first) - first
