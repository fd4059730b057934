"""The event-code table: which city event code each incident type is filed under.

Cities number events differently, so the table is configuration, tagged with the standard
(and version) it follows; `streetwatch serve --codes FILE` replaces the default.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from api.contract.cases import IncidentType


class EventCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, description="the city's event code")
    type: IncidentType = Field(description="the incident type filed under it")
    name: str = Field(description="the code's name in the standard (机动车乱停放, ...)")
    description: str = Field(default="", description="what the code covers, in words")


class CodeTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    standard: str = Field(description="The standard and version the codes follow")
    codes: list[EventCode] = Field(
        min_length=1, description="the codes; the first of each type is its default"
    )

    def get(self, code: str) -> EventCode | None:
        return next((c for c in self.codes if c.code == code), None)

    def default_for(self, type_: IncidentType) -> EventCode:
        return next(c for c in self.codes if c.type == type_)

    @classmethod
    def load(cls, path: Path) -> CodeTable:
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


DEFAULT_CODES = CodeTable(
    standard="GB/T 47678.5 / GB/T 30428.2 (城市管理事件分类与代码)",
    codes=[
        EventCode(
            code="09009",
            type=IncidentType.illegal_parking,
            name="机动车乱停放",
            description="Illegal parking: a motor vehicle parked where parking is not allowed",
        ),
        EventCode(
            code="09006",
            type=IncidentType.street_stall,
            name="占道经营",
            description="Street stall: business occupying the road or pavement",
        ),
        EventCode(
            code="09001",
            type=IncidentType.street_stall,
            name="无照经营游商",
            description="Mobile street vendor without a licence",
        ),
        EventCode(
            code="06010",
            type=IncidentType.garbage,
            name="暴露垃圾",
            description="Exposed garbage",
        ),
    ],
)
