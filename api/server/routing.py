"""The routing table: which department (处置单位) handles a case, and by when (处置时限).

    routes:     (grid cell code or its parent area, incident type or any) -> department
    deadlines:  (incident type, urgency) -> hours, plain or working hours
    calendar:   the working week, its hours, holidays and extra working days (调休)

A cell's own code wins over its parent area, a rule for the type over one for any type.
Imported whole (`streetwatch desk routing`, `PUT /v1/desk/routing`), checked against the
stored grid: every cell must be routed for every incident type, and every rule must name a
cell or parent area of the grid.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from api.contract import IncidentType, Short, Storable
from api.server.clock import now_in
from api.server.grid import Cell
from api.server.problems import Problem
from api.server.tables import DeskRouting

Department = Annotated[str, Field(min_length=1, max_length=200), Storable]


class Urgency(StrEnum):
    normal = "normal"
    urgent = "urgent"


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    area: Short = Field(description="A grid cell's code or a parent area's")
    type: IncidentType | None = Field(None, description="null: every incident type")
    department: Department


class Deadline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: IncidentType
    urgency: Urgency = Urgency.normal
    hours: Annotated[float, Field(gt=0, le=24 * 365, allow_inf_nan=False)]
    working: bool = Field(False, description="Counted in the calendar's working hours")


class Period(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time
    end: time

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: time, info: Any) -> time:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("a working period must end after it starts")
        return end


class Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: Annotated[str, Field(max_length=64)] = "Asia/Shanghai"
    weekdays: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(max_length=7)] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5], description="ISO weekdays: 1 Monday .. 7 Sunday"
    )
    hours: Annotated[list[Period], Field(min_length=1, max_length=8)] = Field(
        default_factory=lambda: [
            Period(start=time(8, 30), end=time(12, 0)),
            Period(start=time(13, 30), end=time(17, 30)),
        ]
    )
    holidays: Annotated[list[date], Field(max_length=1000)] = Field(default_factory=list)
    workdays: Annotated[list[date], Field(max_length=1000)] = Field(
        default_factory=list, description="Extra working days (调休), even on a weekend"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.isoweekday() in self.weekdays and day not in self.holidays

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """`start` plus `hours` of working time, counted in the city's own time zone."""
        zone = ZoneInfo(self.timezone)
        left = timedelta(hours=hours)
        local = start.astimezone(zone)
        day = local.date()
        periods = sorted(self.hours, key=lambda p: p.start)
        for _ in range(3 * 366):  # a calendar with no working time at all ends the loop
            if self.is_working_day(day):
                for p in periods:
                    begin = max(datetime.combine(day, p.start, zone), local)
                    end = datetime.combine(day, p.end, zone)
                    if begin >= end:
                        continue
                    if end - begin >= left:
                        return (begin + left).astimezone(UTC)
                    left -= end - begin
            day += timedelta(days=1)
        raise Problem(
            422, "The working calendar has no working time in three years", kind="invalid-routing"
        )


class RoutingTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: Annotated[list[Route], Field(min_length=1, max_length=100_000)]
    deadlines: Annotated[list[Deadline], Field(min_length=1, max_length=1000)]
    calendar: Calendar = Field(default_factory=Calendar)

    def department(self, cell: str | None, parent: str | None, type_: str) -> str | None:
        """The department for a case of `type_` in `cell` (whose area is `parent`)."""
        for area in (cell, parent):
            if area is None:
                continue
            for wanted in (type_, None):
                for r in self.routes:
                    if r.area == area and r.type == wanted:
                        return r.department
        return None

    def deadline(self, type_: str, urgency: Urgency, start: datetime) -> datetime | None:
        rule = next(
            (d for d in self.deadlines if d.type == type_ and d.urgency == urgency), None
        ) or next((d for d in self.deadlines if d.type == type_), None)
        if rule is None:
            return None
        if rule.working:
            return self.calendar.add_working_hours(start, rule.hours)
        return start + timedelta(hours=rule.hours)


def _invalid(detail: str, **extra: Any) -> Problem:
    return Problem(422, f"Invalid routing table: {detail}", kind="invalid-routing", **extra)


def parse(document: Any) -> RoutingTable:
    try:
        return RoutingTable.model_validate(document)
    except ValidationError as exc:
        faults = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}"
            for e in exc.errors()[:10]
        )
        raise _invalid(faults) from None


def check(table: RoutingTable, cells: list[Cell]) -> None:
    """Every rule names an area of the grid; every cell is routed for every type."""
    areas = {c.code for c in cells} | {c.parent for c in cells if c.parent}
    unknown = sorted({r.area for r in table.routes} - areas)
    if unknown:
        raise _invalid(f"rules name areas the grid does not have: {unknown[:20]}", areas=unknown)
    nowhere = [
        f"{c.code}/{t.value}"
        for c in cells
        for t in IncidentType
        if table.department(c.code, c.parent, t) is None
    ]
    if nowhere:
        raise _invalid(f"cells routed nowhere (cell/type): {nowhere[:20]}", unrouted=nowhere[:1000])
    missing = [t.value for t in IncidentType if not any(d.type == t for d in table.deadlines)]
    if missing:
        raise _invalid(f"no deadline for {missing}", types=missing)


def load(session: Session) -> RoutingTable | None:
    row = session.get(DeskRouting, 1)
    return None if row is None else RoutingTable.model_validate(row.document)


def store(session: Session, table: RoutingTable, by: str) -> None:
    row = session.get(DeskRouting, 1)
    document = table.model_dump(mode="json")
    if row is None:
        session.add(DeskRouting(id=1, document=document, updated_at=now_in(session), updated_by=by))
    else:
        row.document, row.updated_at, row.updated_by = document, now_in(session), by
    session.flush()
