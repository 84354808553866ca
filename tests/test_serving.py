"""The scoring service against a real Feast online store (SQLite, and Redis) and a real model from the tiny
world: online/offline parity, bad input, store outage and recovery, hot reload under load, schema fuzzing,
and ``feast serve`` from the project's Feast repo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
import uvicorn

from larr import feature_store as fsx
from larr import registry as reg
from larr.config import load_config
from larr.ctr.artifact import load_model, predict
from larr.ctr.data import CtrStream
from larr.spec import load_spec, window_of
from serving.app import ServeSettings, create_app
from serving.example import requests_from_log
from tests.ports import free_port

CFG = load_config("tiny")
SPEC = load_spec(CFG.spec)
ROOT = Path(__file__).resolve().parents[1]



class LiveServer:
    """A real uvicorn HTTP server on loopback in a thread (the app object stays reachable for the test)."""

    def __init__(self, app):
        self.app, self.port = app, free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < end, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def built(spark, tiny_world: Path, tiny_jobs: Path, tiny_llm: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Scene vectors, a LARR model and the serving views of the tiny world, published into a registry."""
    from spark_jobs import embed_features
    from training.ctr import train_candidate

    root = tmp_path_factory.mktemp("serving")
    jobs = root / "jobs"
    shutil.copytree(tiny_jobs, jobs)
    features = root / "features"
    embed_features.run(spark, CFG, tiny_world, jobs, validate=False, encoder=tiny_llm["out"] / "encoder",
                       features=features)
    cfg = CFG.model_copy(update={"ctr": CFG.ctr.model_copy(update={"epochs": 1})})
    train_candidate(cfg, "larr", tiny_world, root / "cand", jobs=jobs, features=features, progress=False)
    counts = fsx.export_stats(jobs, features, SPEC)
    fsx.export_region_scene(tiny_world, features)
    registry = root / "registry"
    version = reg.version_of(root / "cand")
    reg.publish(registry, root / "cand", version, None, features)
    reg.record(registry, reg.Decision(str(root / "cand"), version, "none", [], 0.0, None, None, True, "test",
                                      reg.now()))
    days = sorted(p.name.split("=", 1)[1] for p in (jobs / "ctr_samples").glob("date=*"))
    window = window_of(SPEC, days)
    test_day = window["test"]
    log = pd.read_parquet(tiny_world / "impressions" / f"date={test_day}")
    hour = int(log["ts"].dt.hour.value_counts().idxmax())  # the busiest hour of the test day
    as_of = datetime.fromisoformat(test_day) + timedelta(hours=hour, minutes=59, seconds=59)
    return {"root": root, "jobs": jobs, "features": features, "registry": registry, "version": version,
            "test_day": test_day, "hour": hour, "as_of": as_of, "log": log, "counts": counts}


def _repo(built: dict, name: str, online: str = "sqlite", redis: str = "") -> Path:
    # own Feast project per repo: the session's Redis is shared with other test files, and Redis keeps the
    # row with the newer event time, so a shared project would read their features
    repo = fsx.prepare_repo(built["root"] / name, built["features"], online=online, project=f"serving_{name}",
                            **({"redis": redis} if redis else {}))
    fsx.apply(repo)
    fsx.materialize(repo, datetime.fromisoformat(built["test_day"]) - timedelta(days=40), built["as_of"])
    return repo


@pytest.fixture(scope="module")
def sqlite_repo(built: dict) -> Path:
    return _repo(built, "repo_sqlite")


def _settings(built: dict, repo: Path, **kw) -> ServeSettings:
    return ServeSettings(source=built["registry"], repo=repo, reload_seconds=kw.pop("reload_seconds", 0), **kw)


def _offline(built: dict, rows: pd.DataFrame) -> np.ndarray:
    """pCTR of the training rows (ctr_samples) through the model's own preprocessor, offline."""
    m = load_model(built["registry"] / "versions" / built["version"], SPEC)
    path = built["root"] / "parity_rows.parquet"
    rows.to_parquet(path, index=False)
    p_ctr, _ = predict(m.model, CtrStream([path], m.prep, m.scene, 4096, labels=SPEC.labels_out,
                                          user_key=SPEC.user_key))
    return p_ctr


def _parity(built: dict, repo: Path) -> tuple[int, float]:
    log = built["log"]
    busy = log[log["ts"].dt.hour == built["hour"]]
    requests = requests_from_log(busy, SPEC)[:40]
    request_ids = busy[SPEC.log.request].unique()[:40]  # requests_from_log keeps first-appearance order
    samples = pd.read_parquet(built["jobs"] / "ctr_samples" / f"date={built['test_day']}")
    with LiveServer(create_app(_settings(built, repo))) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/readyz").json()["runtime"] == "onnx"  # the default runtime is the one checked here
        online = {}
        for rid, body in zip(request_ids, requests, strict=True):
            r = c.post("/score", json=body)
            assert r.status_code == 200, r.text
            resp = r.json()
            assert resp["model_version"] == built["version"]
            assert not [f for f in resp["fallbacks"] if f.startswith("scene_state")], resp["fallbacks"]
            for s in resp["scores"]:
                online[(rid, s["id"])] = s["p_ctr"]
    rows = samples[samples[SPEC.log.request].isin(request_ids)]
    offline = _offline(built, rows)
    got = np.array([online[(r, i)] for r, i in zip(rows[SPEC.log.request], rows[SPEC.item_key], strict=True)])
    assert len(rows) >= 100 and len(rows) == len(online)
    return len(rows), float(np.abs(got - offline).max())


def test_online_offline_parity_sqlite(built: dict, sqlite_repo: Path) -> None:
    """Test-day requests scored through the running service (online store materialised up to the end of
    their hour) agree with offline scoring of the very training rows to 1e-5."""
    n, diff = _parity(built, sqlite_repo)
    print(f"parity sqlite: {n} impressions, max |pCTR online - offline| = {diff:.2e}")
    assert diff <= 1e-5


def test_online_offline_parity_redis(built: dict, redis_url: str) -> None:
    n, diff = _parity(built, _repo(built, "repo_redis", "redis", redis_url))
    print(f"parity redis: {n} impressions, max |pCTR online - offline| = {diff:.2e}")
    assert diff <= 1e-5


def _body(built: dict) -> dict:
    log = built["log"]
    return requests_from_log(log[log["ts"].dt.hour == built["hour"]], SPEC)[0]


@pytest.fixture(scope="module")
def client(built: dict, sqlite_repo: Path):
    from fastapi.testclient import TestClient

    with TestClient(create_app(_settings(built, sqlite_repo))) as c:
        yield c


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.pop("user_id"), "user_id"),
    (lambda b: b.update(candidates=[]), "candidates"),
    (lambda b: b.update(candidates=b["candidates"] * 200), "candidates"),
    (lambda b: b["context"].pop("ts"), "ts"),
    (lambda b: b["context"].update(ts="yesterday-ish"), "ts"),
    (lambda b: b["context"].update(ts="0001-01-01T00:00:00+01:00"), "ts"),  # valid ISO, outside pandas' range
    (lambda b: b["context"].update(region_id="north"), "region_id"),
    (lambda b: b.update(user_id=2 ** 70), "user_id"),
    (lambda b: b["candidates"][0].update(distance_km="far"), "distance_km"),
    (lambda b: b.update(colour="red"), "colour"),
])
def test_malformed_payload_is_a_422_naming_the_field(client, built: dict, mutate, field: str) -> None:
    body = json.loads(json.dumps(_body(built)))
    mutate(body)
    r = client.post("/score", json=body)
    assert r.status_code == 422, r.text
    assert field in json.dumps(r.json()["detail"])


def test_unknown_user_and_items_are_scored_with_cold_start_defaults(client, built: dict) -> None:
    body = _body(built)
    body["user_id"] = 10 ** 12
    body["candidates"] = body["candidates"][:3] + [{"id": 10 ** 12 + 1, "distance_km": 1.0}]
    r = client.post("/score", json=body)
    assert r.status_code == 200, r.text
    resp = r.json()
    assert any(f.startswith(f"{SPEC.user_key}: unknown") for f in resp["fallbacks"])
    new = next(s for s in resp["scores"] if s["id"] == 10 ** 12 + 1)
    assert any("unknown to the model" in f for f in new["fallbacks"])
    assert any("no online row" in f for f in new["fallbacks"])
    assert all(0.0 < s["p_ctr"] < 1.0 for s in resp["scores"])
    ranked = [s["p_ctr"] for s in resp["scores"]]
    assert ranked == sorted(ranked, reverse=True)


def test_a_huge_request_number_scores_finite(client, built: dict) -> None:
    """1e300 km, standardised, would overflow float32 to inf; clipped (``Z_LIMIT``) it gives a finite score --
    possibly a saturated 0 or 1 for that candidate, whose sigmoid input is then far out -- and leaves the other
    candidates' scores strictly inside (0, 1)."""
    body = _body(built)
    huge = body["candidates"][0]["id"]
    body["candidates"][0]["distance_km"] = 1e300
    r = client.post("/score", json=body)
    assert r.status_code == 200, r.text
    scores = r.json()["scores"]
    assert len(scores) == len(body["candidates"])
    assert all(s["p_ctr"] is not None and 0.0 <= s["p_ctr"] <= 1.0 for s in scores)
    assert all(0.0 < s["p_ctr"] < 1.0 for s in scores if s["id"] != huge)


def test_item_rows_come_from_the_cache_and_a_refresh_picks_up_new_ones(built: dict) -> None:
    """The candidates' item rows are read from the in-memory copy, not per request; a newer online row
    reaches scoring only after the copy is refreshed (``--item-refresh-s``)."""
    from fastapi.testclient import TestClient

    repo = _repo(built, "repo_cache")
    app = create_app(_settings(built, repo, item_refresh_s=0))
    scorer = app.state.scorer
    body = _body(built)
    target = body["candidates"][0]["id"]
    with TestClient(app) as c:
        before = {x["id"]: x["p_ctr"] for x in c.post("/score", json=body).json()["scores"]}
        assert scorer.reader.items.misses == 0 and target in scorer.reader.items.rows_by_id
        view = f"{SPEC.item_name}_stats"
        row = {SPEC.item_key: [target], "event_timestamp": [built["as_of"] + timedelta(minutes=1)],
               "p_imps": [10 ** 6], "p_clicks": [9 * 10 ** 5], "p_orders": [10 ** 5], "p_ctr": [0.9], "p_cvr": [0.1]}
        scorer.reader.store.write_to_online_store(view, pd.DataFrame(row))
        cached = {x["id"]: x["p_ctr"] for x in c.post("/score", json=body).json()["scores"]}
        assert cached == before, "scored from the cached copy until it is refreshed"
        assert scorer.reader.items.try_refresh()
        after = {x["id"]: x["p_ctr"] for x in c.post("/score", json=body).json()["scores"]}
    assert after[target] != before[target]
    assert all(after[i] == before[i] for i in before if i != target)


def test_missing_or_stale_scene_state_falls_back_to_the_request_context(client, built: dict) -> None:
    body = _body(built)
    body["context"]["region_id"] = 999  # a region without any real-time state
    body["context"].update(weather="snow", temperature_c=-5.0)
    resp = client.post("/score", json=body).json()
    assert any(f.startswith("scene_state.weather: no real-time scene state; request context used")
               for f in resp["fallbacks"]), resp["fallbacks"]
    stale = _body(built)
    stale["context"]["ts"] = (built["as_of"] + timedelta(hours=5)).isoformat()  # state is now 5 h old
    stale["context"].update(weather="snow", temperature_c=-5.0)
    resp = client.post("/score", json=stale).json()
    assert any("stale" in f and "request context used (weather, temperature_c)" in f
               for f in resp["fallbacks"]), resp["fallbacks"]
    fresh = client.post("/score", json=_body(built)).json()
    assert not [f for f in fresh["fallbacks"] if f.startswith("scene_state")]


def test_store_outage_is_503_and_recovers_by_itself(built: dict) -> None:
    """The Redis online store goes down and comes back: per-request 503 with the reason and /readyz 503
    meanwhile, the process keeps serving /healthz, and requests succeed again once Redis is back -- over
    real HTTP, against a real redis-server stopped and restarted."""
    import os

    env = dict(os.environ, REDIS_PORT="6393")
    redis = ["bash", str(ROOT / "scripts" / "redis.sh")]
    subprocess.run([*redis, "start"], check=True, env=env)
    try:
        repo = _repo(built, "repo_outage", "redis", "127.0.0.1:6393")
        with LiveServer(create_app(_settings(built, repo))) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/readyz").status_code == 200
            assert c.post("/score", json=_body(built)).status_code == 200
            subprocess.run([*redis, "stop"], check=True, env=env)
            r = c.post("/score", json=_body(built))
            assert r.status_code == 503 and "online store unreachable" in r.json()["detail"], r.text
            assert c.get("/readyz").status_code == 503
            assert c.get("/healthz").status_code == 200
            subprocess.run([*redis, "start"], check=True, env=env)
            fsx.materialize(repo, datetime.fromisoformat(built["test_day"]) - timedelta(days=40), built["as_of"])
            end = time.monotonic() + 20
            while c.get("/readyz").status_code != 200:
                assert time.monotonic() < end, "the service did not recover after Redis came back"
                time.sleep(0.5)
            assert c.post("/score", json=_body(built)).status_code == 200
            metrics = c.get("/metrics").text
            assert 'larr_score_requests_total{outcome="store_unavailable",path="larr"} 1.0' in metrics
    finally:
        subprocess.run([*redis, "stop"], check=False, env=env)


def test_hot_reload_under_concurrent_requests_fails_none(built: dict, sqlite_repo: Path, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(built["registry"], registry)
    app = create_app(ServeSettings(source=registry, repo=sqlite_repo, reload_seconds=0.2))
    second = tmp_path / "second"
    shutil.copytree(built["registry"] / "versions" / built["version"], second)
    state = torch.load(second / "model.pt", weights_only=True)
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, second / "model.pt")
    new_version = reg.version_of(second)
    body = _body(built)
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        stop = threading.Event()
        seen: list[tuple[int, str]] = []

        def hammer() -> None:
            while not stop.is_set():
                r = c.post("/score", json=body)
                seen.append((r.status_code, r.json().get("model_version", "")))

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(1.0)
            reg.publish(registry, second, new_version, None, built["features"])
            reg.record(registry, reg.Decision(str(second), new_version, "none", [], 0.0, None, None, True, "t",
                                              reg.now()))
            end = time.monotonic() + 30
            while not any(v == new_version for _, v in seen[-5:]) and time.monotonic() < end:
                time.sleep(0.1)
            time.sleep(0.5)
            stop.set()
            for f in futures:
                f.result()
    codes = {code for code, _ in seen}
    versions = [v for _, v in seen]
    assert codes == {200}, f"failed requests during reload: {codes}"
    assert versions[0] == built["version"] and versions[-1] == new_version
    assert len(seen) > 20


def test_fuzzing_the_openapi_schema_finds_no_5xx(built: dict, sqlite_repo: Path) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    app = create_app(_settings(built, sqlite_repo))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case) -> None:
            r = case.call()
            if r.status_code >= 500:
                failures.append((case.method, case.path, r.status_code, r.text[:300]))

        check()
    assert not failures, failures


def test_feast_serve_answers_the_feature_services(built: dict, sqlite_repo: Path) -> None:
    """`feast serve` from a prepared copy of the project's repo answers get-online-features for ctr_model."""
    port = free_port()
    env = dict(**fsx._env(sqlite_repo))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "feast"), "serve", "-h", "127.0.0.1", "-p",
                             str(port)], cwd=sqlite_repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        user = int(built["log"][SPEC.user_key].iloc[0])
        body = {"feature_service": "ctr_model", "entities": {SPEC.user_key: [user], SPEC.item_key: [
            int(built["log"][SPEC.item_key].iloc[0])], "scene_key": [0], "region_id": [0]}}
        end = time.monotonic() + 120
        r = None
        while time.monotonic() < end:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/get-online-features", json=body, timeout=10)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(1)
        assert r is not None and r.status_code == 200, r.text if r else "feast serve never answered"
        names = r.json()["metadata"]["feature_names"]
        assert "u_imps" in names and "up_ctr" in names and "up_ctr_by_poi" in names
        results = dict(zip(names, r.json()["results"], strict=True))
        assert results["u_imps"]["values"][0] is not None
    finally:
        proc.terminate()
        proc.wait(30)


def test_feast_apply_works_in_the_shipped_repo_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    res = subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=clone / "feature_repo",
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
