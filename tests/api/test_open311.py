"""The Open311 GeoReport v2 view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.api.helpers import NEARBY, Api, post, report


def _key(api: Api, client: httpx.Client) -> str:
    return client.headers["authorization"].removeprefix("Bearer ")


def test_services_list_the_code_table(api: Api) -> None:
    services = httpx.get(f"{api.url}/open311/v2/services.json").json()
    codes = {s["service_code"]: s for s in services}
    assert set(codes) == {"09009", "09006", "09001", "06010"}
    assert codes["09009"]["service_name"] == "机动车乱停放"
    assert all(s["type"] == "realtime" and s["metadata"] is False for s in services)


def test_requests_reflect_cases_and_map_statuses(api: Api, photos: list[bytes]) -> None:
    case, files = report(photos)
    case_id = post(api.ingest, case, files).json()["case_id"]
    key = _key(api, api.dispatch)
    one = httpx.get(f"{api.url}/open311/v2/requests/{case_id}.json", params={"api_key": key})
    assert one.status_code == 200, one.text
    [req] = one.json()
    assert req["service_request_id"] == case_id and req["service_code"] == "09006"
    assert req["status"] == "open" and req["status_notes"] == "reported"
    assert req["lat"] == case.location.lat and req["long"] == case.location.lon
    assert req["media_url"].endswith(f"/v1/evidence/{case.evidence[0].sha256}")

    api.dispatch.post(
        f"/v1/cases/{case_id}/transitions", json={"to": "rejected", "actor": "li"}
    ).raise_for_status()
    closed = api.dispatch.get("/open311/v2/requests.json", params={"status": "closed"}).json()
    assert [r["service_request_id"] for r in closed] == [case_id]
    assert api.dispatch.get("/open311/v2/requests.json", params={"status": "open"}).json() == []


def test_post_request_creates_or_merges(api: Api, photos: list[bytes]) -> None:
    key = _key(api, api.ingest)
    form = {"api_key": key, "service_code": "09009", "lat": "31.2", "long": "121.4",
            "description": "car on the pavement"}  # fmt: skip
    r = httpx.post(f"{api.url}/open311/v2/requests.json", data=form)
    assert r.status_code == 201, r.text
    [created] = r.json()
    got = api.dispatch.get(f"/v1/cases/{created['service_request_id']}").json()
    assert got["type"] == "illegal_parking" and got["sources"] == ["open311"]
    assert got["description"] == "car on the pavement"

    # A citizen's report of a stall a camera already reported joins that case.
    case, files = report(photos, start=datetime.now(UTC) - timedelta(minutes=5))
    case_id = post(api.ingest, case, files).json()["case_id"]
    form = {"api_key": key, "service_code": "09006", "lat": NEARBY[0], "long": NEARBY[1]}
    r = httpx.post(f"{api.url}/open311/v2/requests.json", data=form)
    assert r.status_code == 200 and r.json()[0]["service_request_id"] == case_id


def test_errors_use_the_open311_format(api: Api) -> None:
    url = f"{api.url}/open311/v2/requests.json"
    r = httpx.post(url, data={"service_code": "09009", "lat": "1", "long": "2"})
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    key = _key(api, api.ingest)
    r = httpx.post(url, data={"api_key": key, "service_code": "99999", "lat": "1", "long": "2"})
    assert r.status_code == 400 and "service_code" in r.json()[0]["description"]
    r = httpx.post(url, data={"api_key": key, "service_code": "09009"})
    assert r.status_code == 400 and "location" in r.json()[0]["description"]
    r = httpx.get(url, params={"api_key": key})  # an ingest key cannot read
    assert r.status_code == 403 and r.json()[0]["code"] == 403
    r = api.dispatch.get("/open311/v2/requests.json", params={"status": "maybe"})
    assert r.status_code == 400 and r.json()[0]["code"] == 400
    r = api.dispatch.get("/open311/v2/requests/cs_nope.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404
