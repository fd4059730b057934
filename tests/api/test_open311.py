"""The Open311 GeoReport v2 view, checked against the shapes of the spec's own examples
(wiki.open311.org/GeoReport_v2): XML by default, JSON beside it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from sqlalchemy import update

from api.server.settings import Settings
from api.server.tables import Case
from tests.api.conftest import make_api
from tests.api.helpers import HERE, NEARBY, Api, post, report

# The spec's examples, element for element (values shortened).
SPEC_SERVICES = """<?xml version="1.0" encoding="utf-8"?>
<services>
  <service>
    <service_code>001</service_code>
    <service_name>Cans left out 24x7</service_name>
    <description>Garbage or recycling cans that have been left out for more than 24 hours
    after collection. Violators will be cited.</description>
    <metadata>true</metadata>
    <type>realtime</type>
    <keywords>lorem, ipsum, dolor</keywords>
    <group>sanitation</group>
  </service>
</services>"""
SPEC_DEFINITION = """<?xml version="1.0" encoding="utf-8"?>
<service_definition>
  <service_code>DMV66</service_code>
  <attributes>
    <attribute>
      <variable>true</variable>
      <code>WHISHETN</code>
      <datatype>singlevaluelist</datatype>
      <required>true</required>
      <datatype_description></datatype_description>
      <order>1</order>
      <description>What is the ticket/tag/DL number?</description>
      <values><value><key>123</key><name>Ford</name></value></values>
    </attribute>
  </attributes>
</service_definition>"""
SPEC_REQUESTS = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>638344</service_request_id>
    <status>closed</status>
    <status_notes>Duplicate request.</status_notes>
    <service_name>Sidewalk and Curb Issues</service_name>
    <service_code>006</service_code>
    <description></description>
    <agency_responsible></agency_responsible>
    <service_notice></service_notice>
    <requested_datetime>2010-04-14T06:37:38-08:00</requested_datetime>
    <updated_datetime>2010-04-14T06:37:38-08:00</updated_datetime>
    <expected_datetime>2010-04-15T06:37:38-08:00</expected_datetime>
    <address>8TH AVE and JUDAH ST</address>
    <address_id>545483</address_id>
    <zipcode>94122</zipcode>
    <lat>37.762221815</lat>
    <long>-122.4651145</long>
    <media_url>http://city.gov.s3.amazonaws.com/requests/media/638344.jpg</media_url>
  </request>
</service_requests>"""
SPEC_CREATED = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>293944</service_request_id>
    <service_notice>The City will inspect and require the responsible party to correct
    within 24 hours and/or issue a Correction Notice.</service_notice>
    <account_id/>
  </request>
</service_requests>"""
SPEC_ERRORS = """<?xml version="1.0" encoding="utf-8"?>
<errors>
  <error>
    <code>403</code>
    <description>Invalid api_key received -- can't proceed with create_request.</description>
  </error>
</errors>"""
SPEC_DISCOVERY = """<?xml version="1.0" encoding="utf-8"?>
<discovery>
  <changeset>2011-04-05T17:48:34Z</changeset>
  <contact>You can email or call for assistance api@example.com +1 (555) 555-5555</contact>
  <key_service>You can request a key here: http://api.example.com/api_key_request</key_service>
  <endpoints>
    <endpoint>
      <specification>http://wiki.open311.org/GeoReport_v2</specification>
      <url>http://open311.example.com/v2</url>
      <changeset>2011-04-20T17:48:34Z</changeset>
      <type>production</type>
      <formats><format>text/xml</format><format>application/json</format></formats>
    </endpoint>
  </endpoints>
</discovery>"""


def shape(element: ET.Element) -> Any:
    """An element's tag with the shapes of its children (in order, repeats merged)."""
    children: list[Any] = []
    for child in element:
        s = shape(child)
        if not children or children[-1] != s:
            children.append(s)
    return (element.tag, tuple(children)) if children else element.tag


def xml(response: httpx.Response, status: int = 200) -> ET.Element:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(response.content)


def same_shape(ours: ET.Element, spec: str, optional: set[str] = frozenset()) -> None:
    """Our document has the spec example's elements, in its order (optional ones aside)."""

    def tags(e: ET.Element) -> list[str]:
        return [c.tag for c in e]

    theirs = ET.fromstring(spec)
    assert ours.tag == theirs.tag
    if len(theirs) and len(ours):
        mine, expected = tags(ours[0]), [t for t in tags(theirs[0]) if t not in optional]
        assert [t for t in mine if t in expected] == expected, (mine, expected)


def _key(client: httpx.Client) -> str:
    return client.headers["authorization"].removeprefix("Bearer ")


@pytest.fixture
def citizen(api: Api) -> str:
    return api.server.create_key("open311", name="citizen-app")


def test_discovery_services_and_definitions(api: Api) -> None:
    base = f"{api.url}/open311/v2"
    discovery = xml(httpx.get(f"{base}/discovery.xml"))
    assert shape(discovery) == shape(ET.fromstring(SPEC_DISCOVERY))
    as_json = httpx.get(f"{base}/discovery.json").json()
    assert as_json["endpoints"][0]["formats"] == ["text/xml", "application/json"]
    assert as_json["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"

    services = xml(httpx.get(f"{base}/services.xml"))
    same_shape(services, SPEC_SERVICES)
    codes = {s.findtext("service_code"): s for s in services}
    assert set(codes) == {"09009", "09006", "09001", "06010"}
    assert codes["09009"].findtext("service_name") == "机动车乱停放"
    assert codes["09009"].findtext("metadata") == "false"
    listed = httpx.get(f"{base}/services.json").json()
    assert {s["service_code"] for s in listed} == set(codes)
    assert all(s["type"] == "realtime" and s["metadata"] is False for s in listed)

    definition = xml(httpx.get(f"{base}/services/09009.xml"))
    assert definition.tag == "service_definition"
    assert definition.findtext("service_code") == "09009"
    assert definition.find("attributes") is not None and len(definition.find("attributes")) == 0
    assert httpx.get(f"{base}/services/09009.json").json() == {
        "service_code": "09009",
        "attributes": [],
    }
    missing = xml(httpx.get(f"{base}/services/nope.xml"), 404)
    assert shape(missing) == shape(ET.fromstring(SPEC_ERRORS))
    assert httpx.get(f"{base}/services.csv").status_code == 400  # a format it doesn't speak
    default = xml(httpx.get(f"{base}/services"))  # no extension: XML, the spec's default
    assert [s.findtext("service_code") for s in default] == list(codes)


def test_requests_as_the_spec_shows_them(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    case_id = post(api.ingest, case, files).json()["case_id"]
    key = _key(api.dispatch)
    base = f"{api.url}/open311/v2"
    one = xml(httpx.get(f"{base}/requests/{case_id}.xml", params={"api_key": key}))
    same_shape(one, SPEC_REQUESTS)
    [req] = one
    assert req.findtext("service_request_id") == case_id
    assert req.findtext("status") == "open" and req.findtext("service_code") == "09006"
    assert float(req.findtext("lat") or 0) == case.location.lat

    api.dispatch.post(
        f"/v1/cases/{case_id}/transitions",
        json={"to": "rejected", "actor": "li", "note": "Not a stall: a parked cart."},
    ).raise_for_status()
    [closed] = api.dispatch.get(f"/open311/v2/requests/{case_id}.json").json()
    assert closed["status"] == "closed"
    assert closed["status_notes"] == "Not a stall: a parked cart."
    assert set(closed) >= {c.tag for c in ET.fromstring(SPEC_REQUESTS)[0]}


def test_media_url_is_fetchable_and_not_from_the_host_header(
    settings: Settings, photos: list[bytes]
) -> None:
    public = settings.model_copy(update={"public_url": "https://sw.city.example/"})
    for api in make_api(public):
        case, files = report(photos, renditions=True)
        case_id = post(api.ingest, case, files).json()["case_id"]
        r = api.dispatch.get(
            f"/open311/v2/requests/{case_id}.json", headers={"Host": "evil.example"}
        )
        media_url = r.json()[0]["media_url"]
        # The first image's de-identified rendition, never the original.
        shown = case.evidence[0].deidentified
        assert shown is not None
        assert media_url.startswith(f"https://sw.city.example/v1/media/{shown.sha256}?")
        # An Open311 client fetches it as is, without a key (here against the local server).
        local = media_url.replace("https://sw.city.example", api.url)
        image = httpx.get(local)
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(image.content).hexdigest() == shown.sha256
        assert shown.sha256 != case.evidence[0].sha256
        assert image.headers["x-content-type-options"] == "nosniff"
        # Only for that image, only with its signature, only until it expires.
        other = local.replace(shown.sha256, case.evidence[0].sha256)
        assert httpx.get(other).status_code == 403
        assert httpx.get(local[:-3] + "AAA").status_code == 403
        expired = local.split("?")[0] + "?expires=1000&signature=" + local.split("signature=")[1]
        assert httpx.get(expired).status_code == 403


def test_a_case_without_renditions_has_no_media(api: Api, photos: list[bytes]) -> None:
    """Evidence stored before renditions (older workers): Open311 shows nothing rather than
    the original."""
    case, files = report(photos)
    case_id = post(api.ingest, case, files).json()["case_id"]
    [request] = api.dispatch.get(f"/open311/v2/requests/{case_id}.json").json()
    assert request["media_url"] is None
    # The case and its originals are there for the dispatch scope all the same.
    stored = api.dispatch.get(f"/v1/cases/{case_id}").json()["evidence"]
    assert [e["sha256"] for e in stored] == [e.sha256 for e in case.evidence]
    assert all(e["deidentified"] is None for e in stored)


def test_query_arguments(api: Api, photos: list[bytes]) -> None:
    ids = {}
    for i, (camera, type_, code) in enumerate(
        [("c1", "street_stall", "09006"), ("c2", "illegal_parking", "09009"),
         ("c3", "garbage", "06010")]
    ):  # fmt: skip
        case, files = report(photos, camera=camera, type_=type_, code=code,
                             at=(30.0 + i, 120.0), n_evidence=1)  # fmt: skip
        ids[code] = post(api.ingest, case, files).json()["case_id"]
    api.dispatch.post(
        f"/v1/cases/{ids['06010']}/transitions", json={"to": "rejected", "actor": "li"}
    ).raise_for_status()

    def found(**params: Any) -> set[str]:
        r = api.dispatch.get("/open311/v2/requests.json", params=params)
        assert r.status_code == 200, r.text
        return {x["service_request_id"] for x in r.json()}

    assert found() == set(ids.values())
    assert found(service_code="09006,09009") == {ids["09006"], ids["09009"]}
    assert found(status="closed") == {ids["06010"]}
    assert found(status="open,closed") == set(ids.values())
    assert found(status="open", service_code="06010") == set()
    # service_request_id overrides every other argument.
    assert found(service_request_id=f"{ids['06010']},{ids['09009']}", status="open",
                 service_code="nope") == {ids["06010"], ids["09009"]}  # fmt: skip

    # The default window is the last 90 days; older requests need dates.
    old = datetime.now(UTC) - timedelta(days=120)
    with api.server.db.write() as session:
        session.execute(update(Case).where(Case.id == ids["09009"]).values(created_at=old))
    assert ids["09009"] not in found()
    start = (old - timedelta(days=1)).isoformat()
    assert found(start_date=start) == {ids["09009"]}  # start + 90 days
    end = (old + timedelta(days=1)).isoformat()
    assert found(end_date=end) == {ids["09009"]}  # 90 days up to end

    def refused(**params: Any) -> str:
        r = api.dispatch.get("/open311/v2/requests.xml", params=params)
        errors = xml(r, 400)
        return errors.findtext("error/description") or ""

    now = datetime.now(UTC)
    assert "90 days" in refused(start_date=(now - timedelta(days=200)).isoformat(),
                                end_date=now.isoformat())  # fmt: skip
    assert "offset" in refused(start_date="2025-01-01T00:00:00")
    assert "after" in refused(start_date=now.isoformat(), end_date=old.isoformat())
    assert "status" in refused(status="pending")
    assert "range" in refused(end_date="9999-12-31T23:59:59-14:00")


def test_post_request_creates_or_merges(api: Api, photos: list[bytes], citizen: str) -> None:
    form = {"api_key": citizen, "service_code": "09009", "lat": "31.2", "long": "121.4",
            "description": "car on the pavement"}  # fmt: skip
    created = xml(httpx.post(f"{api.url}/open311/v2/requests.xml", data=form), 201)
    same_shape(created, SPEC_CREATED, optional={"service_notice", "account_id"})
    request_id = created.findtext("request/service_request_id")
    got = api.dispatch.get(f"/v1/cases/{request_id}").json()
    assert got["type"] == "illegal_parking" and got["sources"] == ["open311"]
    assert got["description"] == "car on the pavement"

    # A citizen's pin for a stall a calibrated camera already placed 11 m off joins that case.
    case, files = report(photos, start=datetime.now(UTC) - timedelta(minutes=5),
                         position={"lat": HERE[0], "lon": HERE[1]})  # fmt: skip
    case_id = post(api.ingest, case, files).json()["case_id"]
    form = {"api_key": citizen, "service_code": "09006", "lat": NEARBY[0], "long": NEARBY[1]}
    r = httpx.post(f"{api.url}/open311/v2/requests.json", data=form)
    assert r.status_code == 200 and r.json()[0]["service_request_id"] == case_id


def test_errors_use_the_open311_format(api: Api, citizen: str) -> None:
    url = f"{api.url}/open311/v2/requests"
    r = httpx.post(f"{url}.json", data={"service_code": "09009", "lat": "1", "long": "2"})
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    errors = xml(httpx.post(f"{url}.xml", data={"service_code": "09009"}), 401)
    assert shape(errors) == shape(ET.fromstring(SPEC_ERRORS))
    form = {"api_key": citizen, "service_code": "99999", "lat": "1", "long": "2"}
    r = httpx.post(f"{url}.json", data=form)
    assert r.status_code == 400 and "service_code" in r.json()[0]["description"]
    r = httpx.post(f"{url}.json", data={"api_key": citizen, "service_code": "09009"})
    assert r.status_code == 400 and "location" in r.json()[0]["description"]
    r = httpx.get(f"{url}.json", params={"api_key": citizen})  # a citizen key cannot read
    assert r.status_code == 403 and r.json()[0]["code"] == 403
    r = api.dispatch.get("/open311/v2/requests.json", params={"status": "maybe"})
    assert r.status_code == 400 and r.json()[0]["code"] == 400
    r = api.dispatch.get("/open311/v2/requests/cs_nope.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404
    xml(api.dispatch.get("/open311/v2/requests/cs_nope.xml"), 404)
