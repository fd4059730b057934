"""Section `api`: the intake API under load, on SQLite and on PostgreSQL, side by side.

The server is what is deployed: `streetwatch serve` (uvicorn, one process) in its own
subprocess on 127.0.0.1, so the load generator (threads in this process, one keep-alive
HTTP connection each) never shares its interpreter. Every cell (database x concurrency x
run) gets a fresh database and data directory; the databases take turns within each run.

The workload is a synthetic city: `SITES` camera sites 200 m apart, 1-3 cameras per site a
few metres apart, one incident starting every `INCIDENT_EVERY_S` seconds of media time at
the next site (so about `(2 * merge window + duration) / INCIDENT_EVERY_S` open cases of all
types overlap any report's merge window). An incident is reported by 1, 2 or 3 of its
site's cameras, each giving the object's position from its calibration (cross-camera
merges go by position, never by the cameras' locations) and, sometimes, re-reported by its
first camera with an overlapping box (a worker that lost its incident state): those reports
merge (200), the first opens the case (201). A few posts are replays of an earlier post with
the same Idempotency-Key and body (an outbox retry after a lost answer). Each report carries two
distinct real JPEGs (crops of the sample photos, 50-150 KB; made distinct per report by a
JPEG comment segment, so every post stores two new files as a real one does).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np

from benchmarks.common import ROOT, machine, table

SITES = 400
INCIDENT_EVERY_S = 60.0  # media time between incidents, city-wide
CAMERAS_PER_INCIDENT = ((1, 0.55), (2, 0.30), (3, 0.15))  # how many cameras report it
RE_REPORT_SHARE = 0.10  # incidents its first camera reports twice (overlapping box)
REPLAY_SHARE = 0.05  # posts re-sent with the same Idempotency-Key
REPLAY_LAG = 100  # a replay goes this many posts after its original (>> clients)
TYPES = (
    ("illegal_parking", "09009", "car", 0.5),
    ("street_stall", "09006", "stall", 0.3),
    ("garbage", "06010", "garbage", 0.2),
)
CONCURRENCY = (4, 16)
POSTS = 400  # per cell; a cell stops early at MAX_CELL_S
MAX_CELL_S = 30.0
WARMUP = 8  # posts sent one by one before timing (counted in the checks, not the figures)
T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
HERE = (30.2741, 120.1551)
M_PER_DEG_LAT = 111_195.0


# -- the workload -------------------------------------------------------------------------


@dataclass
class Post:
    index: int
    report_id: str
    incident: int
    key: str
    body: bytes
    content_type: str
    replay: bool = False


@dataclass
class Workload:
    posts: list[Post]
    photo_kb: tuple[int, int]


def base_photos() -> list[bytes]:
    """Eight real JPEGs, 50-150 KB: crops of the sample photos at quality 90."""
    from models.samples import sample_path

    out = []
    for name in ("bus.jpg", "zidane.jpg"):
        img = cv2.imread(str(sample_path(name)))
        h, w = img.shape[:2]
        for i in range(4):
            y, x = i * h // 12, i * w // 10
            crop = img[y : y + h * 2 // 3, x : x + w * 2 // 3]
            ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            out.append(buf.tobytes())
    return out


def distinct(jpeg: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment (COM) segment after SOI: different bytes, same
    decode cost, so the content-addressed store keeps it as a new file."""
    text = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    m_per_deg_lon = M_PER_DEG_LAT * np.cos(np.radians(lat))
    return lat + north_m / M_PER_DEG_LAT, lon + east_m / m_per_deg_lon


def build_workload(count: int, seed: int) -> Workload:
    """`count` posts (replays included), in the order a city's workers would send them."""
    rng = random.Random(seed)
    photos = base_photos()
    cols = 20
    sites = [_offset(*HERE, 200.0 * (s // cols), 200.0 * (s % cols)) for s in range(SITES)]
    camera_offsets = ((0.0, 0.0), (0.0, 9.0), (9.0, 0.0))  # metres: all within 30 m
    reports: list[tuple[datetime, int, dict]] = []
    incident = 0
    while len(reports) < count:
        site = (incident * 37) % SITES  # 37 is prime to SITES: every site, in turn
        start = T0 + timedelta(seconds=incident * INCIDENT_EVERY_S)
        type_, code, cls, _ = rng.choices(TYPES, weights=[t[3] for t in TYPES])[0]
        n_cams = rng.choices(*zip(*CAMERAS_PER_INCIDENT, strict=True))[0]
        cams = rng.sample(range(3), n_cams)
        sightings = [(c, rng.uniform(0, 90), None) for c in cams]
        if rng.random() < RE_REPORT_SHARE:
            sightings.append((cams[0], rng.uniform(150, 240), "again"))
        boxes = {c: _box(rng) for c in cams}
        for cam, delay, again in sightings:
            x1, y1, x2, y2 = boxes[cam]
            if again:  # the same site in the same view, a little shifted: IoU ~0.8
                x1, y1, x2, y2 = x1 + 12, y1 + 8, x2 + 12, y2 + 8
            first = start + timedelta(seconds=delay)
            lat, lon = _offset(*sites[site], *camera_offsets[cam])
            camera = f"cam-{site:03d}-{cam}"
            rid = f"{camera}-{type_}-{incident:05d}" + ("-b" if again else "")
            body = {
                "id": rid,
                "type": type_,
                "event_code": code,
                "camera_id": camera,
                "zone_id": f"zone-{cam}",
                "class_name": cls,
                "confidence": round(rng.uniform(0.5, 0.95), 3),
                "bbox": [x1, y1, x2, y2],
                "first_seen": first,
                "confirmed_at": first + timedelta(seconds=60),
                "last_seen": first + timedelta(seconds=120),
                "location": {"lat": lat, "lon": lon, "grid": f"3301020{site:05d}"},
                # The object's own place (calibrated cameras): what merges across cameras.
                "position": {"lat": sites[site][0], "lon": sites[site][1]},
            }
            reports.append((first + timedelta(seconds=60), incident, body))
        incident += 1
    reports.sort(key=lambda r: r[0])  # workers post when an incident is confirmed
    reports = reports[:count]

    import hashlib

    from api.contract import CaseReport

    originals: list[Post] = []
    for i, (_, incident, body) in enumerate(reports):
        files, refs = [], []
        for j in range(2):
            data = distinct(photos[(i + 3 * j) % len(photos)], f"{body['id']}/{j}")
            name = f"{body['id']}-{j}.jpg"
            files.append(("evidence", (name, data, "image/jpeg")))
            refs.append(
                {
                    "kind": "first_seen" if j == 0 else "confirmed",
                    "path": f"/var/lib/streetwatch/evidence/{name}",
                    "captured_at": body["first_seen"] + timedelta(seconds=60 * j),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        report = CaseReport.model_validate({**body, "evidence": refs})
        parts = [("case", (None, report.model_dump_json(), "application/json")), *files]
        request = httpx.Request("POST", "http://bench/v1/cases", files=parts)
        request.read()
        originals.append(
            Post(
                i,
                body["id"],
                incident,
                f"idem-{body['id']}",
                request.content,
                request.headers["content-type"],
            )
        )
    # Replays: a post sent again REPLAY_LAG posts later, as an outbox retry would.
    n_replays = round(count * REPLAY_SHARE)
    lag = min(REPLAY_LAG, count // 2)
    replayed = set(rng.sample(range(count - lag), n_replays))
    order: list[Post] = []
    pending: dict[int, list[Post]] = {}
    for i, post in enumerate(originals):
        order.append(post)
        if i in replayed:
            copy = Post(
                0,
                post.report_id,
                post.incident,
                post.key,
                post.body,
                post.content_type,
                replay=True,
            )
            pending.setdefault(i + lag, []).append(copy)
        order += pending.pop(i, [])
    for i, post in enumerate(order):
        post.index = i
    sizes = [len(p) for p in photos]
    return Workload(order, (min(sizes) // 1024, max(sizes) // 1024))


def _box(rng: random.Random) -> tuple[float, float, float, float]:
    # On the smallest evidence crop (540x480): a site box must lie on the report's frame.
    x, y = rng.uniform(0, 200), rng.uniform(100, 300)
    w, h = rng.uniform(120, 300), rng.uniform(80, 160)
    return (round(x, 1), round(y, 1), round(x + w, 1), round(y + h, 1))


# -- the server -----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *args]


def create_key(data_dir: Path, db_url: str, scope: str) -> str:
    out = subprocess.run(
        _cli(
            "keys",
            "create",
            "--data-dir",
            str(data_dir),
            "--db",
            db_url,
            "--scope",
            scope,
            "--name",
            f"bench-{scope}",
        ),
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
        cwd=ROOT,
    )
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def serve(data_dir: Path, db_url: str) -> Iterator[tuple[str, int]]:
    """`streetwatch serve` on a free loopback port; yields its base URL and pid."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        _cli(
            "serve",
            "--data-dir",
            str(data_dir),
            "--db",
            db_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (data_dir / "serve.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"streetwatch serve did not start:\n{tail}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def durable_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on loopback with the server's default durability (fsync,
    synchronous_commit and full_page_writes on), unlike the test cluster of
    scripts/postgres-test.sh, which turns them off; yields its admin URL."""
    bindir = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    directory = Path(tempfile.mkdtemp(prefix="streetwatch-bench-pg-", dir="/var/tmp"))
    root = os.geteuid() == 0
    if root:
        shutil.chown(directory, "postgres")

    def as_owner(*cmd: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd] if root else list(cmd),
            check=True,
            capture_output=True,
            timeout=120,
        )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = directory / "data"
    as_owner(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-locale",
    )
    as_owner(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(directory / "server.log"),
        "-w",
        "-t",
        "60",
        "start",
        "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {directory}",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_owner(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(directory, ignore_errors=True)


def postgres_facts(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        knobs = {
            k: conn.execute(f"SHOW {k}").fetchone()[0]
            for k in ("fsync", "synchronous_commit", "full_page_writes")
        }
    return f"PostgreSQL {version.split()[0]} ({', '.join(f'{k}={v}' for k, v in knobs.items())})"


# -- one cell: drive a server, check what it stored --------------------------------------


@dataclass
class Cell:
    db: str
    clients: int
    posts_per_s: float = 0.0
    cpu_ms_per_post: float = 0.0  # the server process (not PostgreSQL's)
    latency: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    overtaken: int = 0  # replays the server stored before their original (answered it later)
    checks: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (got, expected)

    @property
    def ok(self) -> bool:
        return not self.errors and all(g == e for g, e in self.checks.values())


def drive(url: str, pid: int, key: str, work: Workload, clients: int, cell: Cell) -> list[Post]:
    """Send the posts from `clients` threads; returns the posts that were sent."""
    headers = {"Authorization": f"Bearer {key}"}
    results: list[tuple[Post, int, bool, float, float]] = []  # post, status, replayed, t0, t1
    lock = threading.Lock()
    posts = work.posts
    next_post = iter(range(WARMUP, len(posts)))
    stop_at = [0.0]

    def send(client: httpx.Client, post: Post) -> None:
        h = {**headers, "Idempotency-Key": post.key, "Content-Type": post.content_type}
        t0 = time.perf_counter()
        try:
            r = client.post("/v1/cases", content=post.body, headers=h)
            status, replayed = r.status_code, r.headers.get("Idempotent-Replayed") == "true"
            if status not in (200, 201):
                with lock:
                    cell.errors.append(f"{post.report_id}: {status} {r.text[:200]}")
        except httpx.HTTPError as exc:
            status, replayed = 0, False
            with lock:
                cell.errors.append(f"{post.report_id}: {type(exc).__name__}: {exc}")
        t1 = time.perf_counter()
        with lock:
            results.append((post, status, replayed, t0, t1))

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                with lock:
                    i = next(next_post, None)
                if i is None or time.perf_counter() > stop_at[0]:
                    return
                send(client, posts[i])

    with httpx.Client(base_url=url, timeout=60) as client:
        for post in posts[:WARMUP]:
            send(client, post)
    warm = len(results)
    cpu = cpu_s(pid)
    started = time.perf_counter()
    stop_at[0] = started + MAX_CELL_S
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    timed = results[warm:]
    elapsed = max(r[4] for r in timed) - started
    cell.posts_per_s = len(timed) / elapsed
    cell.cpu_ms_per_post = (cpu_s(pid) - cpu) / len(timed) * 1e3
    for _, status, replayed, t0, t1 in timed:  # classified by what the server answered
        kind = "replayed" if replayed else {201: "created", 200: "merged"}.get(status, "error")
        cell.latency.setdefault(kind, []).append(t1 - t0)
    # Each Idempotency-Key must be stored once and answered from its record every other time;
    # which of its posts gets there first is up to the server (its write lock need not be fair).
    answers: dict[str, list[tuple[Post, bool]]] = {}
    for post, status, replayed, _, _ in results:
        if status in (200, 201):
            answers.setdefault(post.key, []).append((post, replayed))
    for key, got in answers.items():
        if sum(not replayed for _, replayed in got) != 1:
            cell.errors.append(f"{key}: {len(got)} posts, replay answers {[r for _, r in got]}")
        cell.overtaken += sum(post.replay and not replayed for post, replayed in got)
    cell.sent = len(results)
    return [r[0] for r in results]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(url: str, dispatch_key: str, sent: list[Post], evidence_dir: Path, cell: Cell) -> None:
    """Nothing lost, nothing doubled: one case per incident, every report and image once."""
    originals = [p for p in sent if not p.replay]
    reports = {p.report_id for p in originals}
    incidents = {p.incident for p in originals}
    cases, cursor = [], None
    with httpx.Client(
        base_url=url, timeout=60, headers={"Authorization": f"Bearer {dispatch_key}"}
    ) as client:
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/cases", params=params).raise_for_status().json()
            cases += page["items"]
            if not (cursor := page["next_cursor"]):
                break
    stored = [rid for c in cases for rid in c["report_ids"]]
    files = sum(1 for p in evidence_dir.rglob("*") if p.is_file())
    cell.checks = {
        "cases": (len(cases), len(incidents)),
        "report_count sum": (sum(c["report_count"] for c in cases), len(reports)),
        "distinct reports": (len(set(stored)), len(reports)),
        "evidence links": (sum(len(c["evidence"]) for c in cases), 2 * len(reports)),
        "evidence files": (files, 2 * len(reports)),
    }


def run_cell(db: str, clients: int, db_url: str, work: Workload, data_dir: Path) -> Cell:
    cell = Cell(db, clients)
    ingest = create_key(data_dir, db_url, "ingest")
    dispatch = create_key(data_dir, db_url, "dispatch")
    with serve(data_dir, db_url) as (url, pid):
        sent = drive(url, pid, ingest, work, clients, cell)
        check(url, dispatch, sent, data_dir / "evidence", cell)
    return cell


# -- the section -------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min)"


def run(runs: int, posts: int = POSTS) -> str:
    load_before = _load()
    work = build_workload(posts, seed=1)  # the same input for every cell
    cells: list[Cell] = []
    loads: list[float] = []  # 1-minute load average as each run starts
    with durable_postgres() as admin_url:
        from tests.support.api import fresh_database

        pg = postgres_facts(admin_url)
        for r in range(runs):
            loads.append(os.getloadavg()[0])
            for clients in CONCURRENCY:
                for db in ("SQLite", "PostgreSQL"):
                    with tempfile.TemporaryDirectory(prefix="sw-bench-api-") as tmp:
                        data_dir = Path(tmp)
                        if db == "SQLite":
                            cell = run_cell(
                                db, clients, f"sqlite:///{data_dir / 'sw.db'}", work, data_dir
                            )
                        else:
                            with fresh_database(admin_url) as url:
                                cell = run_cell(db, clients, url, work, data_dir)
                    cells.append(cell)
                    print(
                        f"  api run {r + 1}: {db} x{clients}: {cell.posts_per_s:.1f} posts/s, "
                        f"checks {'ok' if cell.ok else 'FAILED'}",
                        flush=True,
                    )
    return render(cells, runs, work, pg, load_before, loads)


def render(
    cells: list[Cell], runs: int, sample: Workload, pg: str, load_before: str, loads: list[float]
) -> str:
    rows = []
    for db in ("SQLite", "PostgreSQL"):
        for clients in CONCURRENCY:
            group = [c for c in cells if c.db == db and c.clients == clients]
            rates = [c.posts_per_s for c in group]
            sqlite = [c.posts_per_s for c in cells if c.db == "SQLite" and c.clients == clients]
            ratio = statistics.median(r / q for r, q in zip(rates, sqlite, strict=True))
            cpu = statistics.median(c.cpu_ms_per_post for c in group)

            def both(kind: str, group: list[Cell] = group) -> str:
                p50 = statistics.median(_ms(c.latency.get(kind, []), 50) for c in group)
                p99 = statistics.median(_ms(c.latency.get(kind, []), 99) for c in group)
                return f"{p50:.0f} / {p99:.0f}"

            rows.append(
                [
                    "SQLite (WAL)" if db == "SQLite" else "PostgreSQL",
                    clients,
                    f"**{statistics.median(rates):.1f}**",
                    " / ".join(f"{x:.1f}" for x in rates),
                    f"{ratio:.2f}x",
                    both("created"),
                    both("merged"),
                    both("replayed"),
                    f"{cpu:.0f}",
                ]
            )
    body = table(
        [
            "database",
            "clients",
            "posts/s (median)",
            "runs",
            "vs SQLite",
            "created p50 / p99 ms",
            "merged p50 / p99 ms",
            "replayed p50 / p99 ms",
            "server CPU ms/post",
        ],
        rows,
    )
    all_ok = all(c.ok for c in cells)
    n = len(sample.posts)
    replays = sum(p.replay for p in sample.posts)
    incidents = len({p.incident for p in sample.posts})
    merged = n - replays - incidents
    again = sum(p.report_id.endswith("-b") for p in sample.posts if not p.replay)
    failed = [
        f"{c.db} x{c.clients}: "
        + "; ".join(
            [f"{k} {g}/{e}" for k, (g, e) in c.checks.items() if g != e]
            + ([f"{len(c.errors)} errors, first: {c.errors[0]}"] if c.errors else [])
        )
        for c in cells
        if not c.ok
    ]
    checked = ", ".join(f"{k} {g}/{e}" for k, (g, e) in cells[-1].checks.items())
    overtaken = sum(c.overtaken for c in cells)
    order = (
        f" In {overtaken} case(s) over all cells a replay reached the server's write lock "
        f"before its original post (the lock is not first-come, first-served) and was stored "
        f"as the original, the original then answered as the replay: correct, and counted so "
        f"in the latencies."
        if overtaken
        else ""
    )
    verdict = (
        f"**Correctness: all {len(cells)} cells passed**: every post answered 201/200, each "
        f"Idempotency-Key stored once and its other post answered from the idempotency record "
        f"(`Idempotent-Replayed`); counted through `GET /v1/cases` and the evidence store "
        f"after each cell (the last cell: {checked}).{order}"
        if all_ok
        else "**Correctness: FAILED** in " + "; ".join(failed)
    )
    open_cases = (2 * 1800 + 400) / INCIDENT_EVERY_S
    lo, hi = sample.photo_kb
    how = (
        f"Machine: {machine()}; FastAPI {_version('fastapi')}, uvicorn {_version('uvicorn')}, "
        f"SQLAlchemy {_version('sqlalchemy')}, SQLite {sqlite3.sqlite_version} (WAL, "
        f"synchronous=NORMAL, as `api.server.db` sets it), {pg} in a cluster of its own (the test "
        f"cluster of `scripts/postgres-test.sh` turns durability off); the evidence store "
        f"fsyncs every image either way. Load average {load_before} before, {_load()} after, "
        f"{' / '.join(f'{x:.1f}' for x in loads)} (1 min) as each run started. "
        f"Server: `streetwatch serve` (one uvicorn process, access log to a file) on "
        f"127.0.0.1, a fresh database and data directory per cell; load: keep-alive HTTP "
        f"clients in threads of the benchmark process, {WARMUP} warm-up posts first. "
        f"Input: {n} posts per cell, {incidents} incidents at {SITES} sites, each reported by "
        f"1-3 cameras 9 m apart: {incidents} open a case, {merged} merge into one "
        f"({merged - again} from another camera, {again} re-reports by the same camera), "
        f"{replays} are replays of an earlier post; 2 distinct real JPEGs per report "
        f"({lo}-{hi} KB, crops of bus.jpg / zidane.jpg); one incident per "
        f"{INCIDENT_EVERY_S:g} s of media time, so ~{open_cases:.0f} open cases of all types "
        f"overlap each merge window. posts/s counts every timed post, replays included; "
        f"server CPU is the `streetwatch serve` process's user + system time per post "
        f"(PostgreSQL's processes not included). Median of {runs} runs; p50/p99 are per "
        f"run, then median."
    )
    return f"{body}\n\n{verdict}\n\n{how}"


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


# -- section `api-lock`: a wrong-key sign-in flood and a writer holding the lock ----------

LOCK_CLIENTS = 16  # intake clients
FLOOD_CONNECTIONS = 16  # wrong-key sign-ins from one client address, a connection each
LOCK_HOLD_S, LOCK_EVERY_S = 1.0, 2.0  # the other writer holds the lock 1 s in every 2 s
PROBE_EVERY_S = 0.05  # /healthz
SCENARIOS = ("quiet", "wrong-key flood", "flood + a writer holding the lock")


@dataclass
class Side:
    """What runs beside the intake load, and what it saw."""

    healthz: list[float] = field(default_factory=list)
    sign_ins: dict[int, int] = field(default_factory=dict)  # status -> count
    held_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def _probe(url: str, stop: threading.Event, side: Side) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                client.get("/healthz").raise_for_status()
                side.healthz.append(time.perf_counter() - t0)
            except httpx.HTTPError as exc:
                side.errors.append(f"/healthz: {type(exc).__name__}")
            stop.wait(PROBE_EVERY_S)


def _flood(url: str, stop: threading.Event, side: Side, lock: threading.Lock) -> None:
    """A browser sending wrong keys as fast as it is answered, with a valid sign-in form."""
    import re

    with httpx.Client(base_url=url, timeout=60) as client:
        page = client.get("/console/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        n = 0
        while not stop.is_set():
            n += 1
            try:
                r = client.post("/console/login", data={"key": f"sw_{n}_wrong", "csrf": token})
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            with lock:
                side.sign_ins[status] = side.sign_ins.get(status, 0) + 1


def _hold(db_url: str, stop: threading.Event, side: Side) -> None:
    """Another writer (a long intake, a prune): the write lock, LOCK_HOLD_S in every
    LOCK_EVERY_S, taken as `api.server.db` takes it."""
    from api.server.db import _PG_WRITE_LOCK

    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
        take, give = (lambda: conn.execute("BEGIN IMMEDIATE")), (lambda: conn.execute("ROLLBACK"))
    else:
        import psycopg

        conn = psycopg.connect(db_url, autocommit=True)  # type: ignore[assignment]
        take = lambda: conn.execute("SELECT pg_advisory_lock(%s)", (_PG_WRITE_LOCK,))  # noqa: E731
        give = lambda: conn.execute("SELECT pg_advisory_unlock(%s)", (_PG_WRITE_LOCK,))  # noqa: E731
    try:
        while not stop.is_set():
            take()
            t0 = time.perf_counter()
            stop.wait(LOCK_HOLD_S)
            give()
            side.held_s += time.perf_counter() - t0
            stop.wait(LOCK_EVERY_S - LOCK_HOLD_S)
    finally:
        conn.close()


def run_lock_cell(
    db: str, scenario: str, db_url: str, work: Workload, data_dir: Path
) -> tuple[Cell, Side]:
    cell = Cell(db, LOCK_CLIENTS)
    ingest = create_key(data_dir, db_url, "ingest")
    dispatch = create_key(data_dir, db_url, "dispatch")
    side, stop, lock = Side(), threading.Event(), threading.Lock()
    with serve(data_dir, db_url) as (url, pid):
        threads = [threading.Thread(target=_probe, args=(url, stop, side))]
        if scenario != "quiet":
            threads += [
                threading.Thread(target=_flood, args=(url, stop, side, lock))
                for _ in range(FLOOD_CONNECTIONS)
            ]
        if "writer" in scenario:
            threads.append(threading.Thread(target=_hold, args=(db_url, stop, side)))
        for t in threads:
            t.start()
        try:
            sent = drive(url, pid, ingest, work, LOCK_CLIENTS, cell)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        check(url, dispatch, sent, data_dir / "evidence", cell)
    cell.latency["healthz"] = side.healthz
    cell.errors += side.errors
    return cell, side


def run_lock(posts: int = POSTS) -> str:
    """Intake and /healthz latency, quiet, under a wrong-key sign-in flood, and with a writer
    holding the lock besides; one run per cell (issue 28)."""
    load_before = _load()
    work = build_workload(posts, seed=1)
    rows, verdicts = [], []
    with durable_postgres() as admin_url:
        from tests.support.api import fresh_database

        pg = postgres_facts(admin_url)
        for db in ("SQLite", "PostgreSQL"):
            for scenario in SCENARIOS:
                with tempfile.TemporaryDirectory(prefix="sw-bench-api-") as tmp:
                    data_dir = Path(tmp)
                    if db == "SQLite":
                        url = f"sqlite:///{data_dir / 'sw.db'}"
                        cell, side = run_lock_cell(db, scenario, url, work, data_dir)
                    else:
                        with fresh_database(admin_url) as url:
                            cell, side = run_lock_cell(db, scenario, url, work, data_dir)
                intake = [x for k, v in cell.latency.items() if k != "healthz" for x in v]
                health = side.healthz
                flood = ", ".join(f"{n} x {s}" for s, n in sorted(side.sign_ins.items())) or "—"
                rows.append(
                    [
                        "SQLite (WAL)" if db == "SQLite" else "PostgreSQL",
                        scenario,
                        f"{cell.posts_per_s:.1f}",
                        " / ".join(f"{_ms(intake, q):.0f}" for q in (50, 95, 99)),
                        " / ".join(f"{_ms(health, q):.0f}" for q in (50, 99, 100)),
                        flood,
                        f"{side.held_s:.0f}",
                    ]
                )
                if not cell.ok:
                    wrong = [f"{k} {g}/{e}" for k, (g, e) in cell.checks.items() if g != e]
                    first = (
                        [f"{len(cell.errors)} errors, first: {cell.errors[0]}"]
                        if cell.errors
                        else []
                    )
                    verdicts.append(f"{db}, {scenario}: " + "; ".join(wrong + first))
                print(f"  api-lock: {db}, {scenario}: {rows[-1][2:]} {verdicts[-1:]}", flush=True)
    body = table(
        [
            "database",
            "beside the intake",
            "posts/s",
            "intake p50 / p95 / p99 ms",
            "/healthz p50 / p99 / max ms",
            "wrong-key sign-ins answered (count x status)",
            "lock held s",
        ],
        rows,
    )
    verdict = (
        f"**Correctness: all {len(rows)} cells passed** (every post stored once, counted "
        f"through the API and the evidence store, as in section 5)."
        if not verdicts
        else "**Correctness: FAILED** in " + "; ".join(verdicts)
    )
    how = (
        f"Machine: {machine()}, shared with other work while it ran (contended: load average "
        f"{load_before} before, {_load()} after); {pg}. Each cell: a fresh database and "
        f"`streetwatch serve` (one process), {LOCK_CLIENTS} intake clients sending the "
        f"section 5 workload ({len(work.posts)} posts, at most {MAX_CELL_S:g} s), one client "
        f"probing `/healthz` every {PROBE_EVERY_S * 1000:g} ms; the flood: {FLOOD_CONNECTIONS} "
        f"connections from one address posting wrong keys to `/console/login` as fast as "
        f"they are answered (past the per-address allowance the answer is 429); the writer: "
        f"another connection taking the write lock as `api.server.db` does (SQLite `BEGIN "
        f"IMMEDIATE`, the PostgreSQL advisory lock) for {LOCK_HOLD_S:g} s in every "
        f"{LOCK_EVERY_S:g} s. One run per cell: a shape, not a precise figure."
    )
    return f"{body}\n\n{verdict}\n\n{how}"
