"""Open311 GeoReport v2 wire formats: XML (the spec's default) and JSON.

The format is the path's extension (`requests.xml`, `requests.json`); a path without one is
XML, as the spec has it. Element names and nesting follow the spec's own examples:
`<services><service>…`, `<service_requests><request>…`, `<errors><error>…`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from fastapi.responses import JSONResponse, Response

XML_TYPE = "text/xml; charset=utf-8"
# The spec: "the root element must be preceded with the XML declaration including the
# encoding="UTF-8" attribute".
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def document(root: ET.Element) -> bytes:
    return DECLARATION + ET.tostring(root, encoding="unicode").encode()


def wants_json(path: str) -> bool:
    return path.endswith(".json")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _element(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _element(child, k, v)
    elif isinstance(value, list):
        singular = {"values": "value", "attributes": "attribute"}.get(name, "item")
        for v in value:
            _element(child, singular, v)
    elif value is not None:
        child.text = _text(value)


def to_xml(root: str, item: str, rows: Iterable[Mapping[str, Any]]) -> bytes:
    top = ET.Element(root)
    for row in rows:
        _element(top, item, row)
    return document(top)


def to_xml_object(root: str, value: Mapping[str, Any]) -> bytes:
    top = ET.Element(root)
    for k, v in value.items():
        _element(top, k, v)
    return document(top)


def respond_list(
    path: str, root: str, item: str, rows: list[dict[str, Any]], status: int = 200
) -> Response:
    if wants_json(path):
        return JSONResponse(rows, status)
    return Response(to_xml(root, item, rows), status, media_type=XML_TYPE)


def error_response(
    path: str, status: int, description: str, headers: Mapping[str, str] | None = None
) -> Response:
    rows = [{"code": status, "description": description}]
    if wants_json(path) or not path.startswith("/open311/"):
        return JSONResponse(rows, status, headers=dict(headers or {}))
    return Response(
        to_xml("errors", "error", rows), status, headers=dict(headers or {}), media_type=XML_TYPE
    )
