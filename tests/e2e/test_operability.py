"""Operability: metrics on a running worker, alert rules (promtool; their annotations:
tests/unit/test_alerts.py), a real Prometheus seeing the lag alert fire and resolve, DLQ
inspection and replay, and the docker stack files referencing only metrics the code
defines."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

import metrics
from replay_ingest.localstack import free_port, spawn, stop_process
from tests import builders
from tests.checks import dlq
from tests.stack import CAPTURE, DLQ, PARTITIONS, TEAMS, Stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "docker" / "prometheus"


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool and prometheus from Debian's `prometheus` package, installed if missing."""
    if shutil.which("promtool") is None or shutil.which("prometheus") is None:
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "prometheus"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    path = shutil.which("promtool")
    assert path is not None
    return path


def defined_metrics() -> set[str]:
    """Every sample name the code can expose (counters with _total, histograms' series)."""
    names = set()
    for collector in list(metrics.REGISTRY._collector_to_names):
        for family in collector.describe():
            for sample in family.samples or [family]:
                names.add(getattr(sample, "name", family.name))
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def referenced_metrics(text: str) -> set[str]:
    return set(re.findall(r"\breplay_[a-z_]+\b", text)) - {"replay_ingest", "replay-ingest"}


def test_alert_rules_pass_promtool(promtool: str) -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_docker_files_parse_and_reference_only_defined_metrics(
    promtool: str, tmp_path: Path
) -> None:
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "clickhouse", "minio", "worker-1", "worker-2", "prometheus", "grafana"} <= set(
        services
    )
    dashboard = json.loads(
        (ROOT / "docker" / "grafana" / "dashboards" / "replay-ingest.json").read_text()
    )
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 6
    defined = defined_metrics()
    for name in ("alerts.yml", "alerts_test.yml"):
        missing = referenced_metrics((PROMETHEUS_DIR / name).read_text()) - defined
        assert not missing, (name, missing)
    assert not referenced_metrics("\n".join(exprs)) - defined
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    local = tmp_path / "prometheus.yml"
    local.write_text(
        config.replace("/etc/prometheus/alerts.yml", str(PROMETHEUS_DIR / "alerts.yml"))
    )
    result = subprocess.run(
        [promtool, "check", "config", str(local)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- a running worker ----------------------------------------------------------------


def test_metrics_on_a_running_worker_match_what_happened(stack: Stack) -> None:
    worker = stack.worker().start()
    good = [builders.capture(session_id=f"m-{i}") for i in range(8)]
    bad = [builders.capture(token="nope")] * 3 + [b"{"] * 2
    stack.produce(good + bad)
    stack.consume(DLQ, len(bad))
    wait_until(
        lambda: worker.scalar("SELECT count() FROM session_recording_events FINAL") == 8,
        60,
        "the good rows",
    )
    wait_until(
        lambda: (
            worker.metric("replay_consumer_lag_messages", topic=CAPTURE) == 0
            and worker.metric("replay_assigned_partitions", topic=CAPTURE) == PARTITIONS
        ),
        30,
        "lag back to 0 on every partition",
    )
    text = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics").read().decode()
    exposed = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}
    declared = {f.name for c in metrics.REGISTRY._collector_to_names for f in c.describe()}
    assert declared <= exposed | {n.removesuffix("_total") for n in exposed}
    assert worker.metric("replay_messages_consumed_total", topic=CAPTURE) == 13
    assert worker.metric("replay_dlq_messages_total", reason="unknown_token") == 3
    assert worker.metric("replay_dlq_messages_total", reason="invalid_json") == 2
    assert worker.metric("replay_clickhouse_rows_total", table="session_recording_events") == 8
    assert worker.metric("replay_worker_up") == 1
    assert worker.metric("replay_rebalances_total") >= 1
    assert 0 < worker.metric("replay_event_time_lag_seconds", topic=CAPTURE) < 10**9
    lags = [v for k, v in worker.metrics().items() if k.startswith("replay_consumer_lag_messages{")]
    assert len(lags) >= PARTITIONS and set(lags) == {0.0}


def test_dlq_replay_after_the_fix_lands_each_message_once(stack: Stack, tmp_path: Path) -> None:
    worker = stack.worker().start()
    orphans = [
        builders.capture(token="token-new", team_id=None, session_id=f"late-{i}") for i in range(4)
    ]
    stack.produce([*orphans, builders.capture(event="$pageview")])
    stack.consume(DLQ, 5)
    env = worker.env

    def cli(*args: str) -> str:
        return dlq(env, *args)

    listing = cli("list")
    assert "5 dead letter(s)" in listing and "unknown_token" in listing
    assert "dlq-source-topic" in listing and "invalid_event" in listing
    assert "4 dead letter(s)" in cli("list", "--reason", "unknown_token")
    assert "0 dead letter(s)" in cli("list", "--since", "2100-01-01")

    worker.stop()  # the fix: the team joins the registry
    teams = [*TEAMS, {"team_id": 4, "token": "token-new", "recording_enabled": True}]
    Path(env["REPLAY_TEAMS_FILE"]).write_text(json.dumps(teams))
    worker.start()
    assert "would replay 4" in cli("replay", "--reason", "unknown_token", "--dry-run")
    assert "replayed 4 dead letter(s)" in cli("replay", "--reason", "unknown_token")
    assert "replayed 0 dead letter(s)" in cli("replay", "--reason", "unknown_token")
    assert "4 already replayed" in cli("replay", "--reason", "unknown_token", "--dry-run")

    query = "SELECT count() FROM session_recording_events WHERE team_id = 4"
    wait_until(lambda: worker.scalar(query) == 4, 60, "the replayed rows")
    assert worker.scalar(query + " AND startsWith(session_id, 'late-')") == 4
    assert worker.scalar("SELECT count() FROM session_recording_events WHERE team_id = 1") == 0


# --- a real Prometheus ---------------------------------------------------------------


def prometheus_get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())["data"]


def lag_alert(port: int) -> str | None:
    """State of the capture topic's lag alert (other topics' lag alerts are not this test's)."""
    states = [
        a["state"]
        for a in prometheus_get(port, "/api/v1/alerts")["alerts"]
        if a["labels"]["alertname"] == "ReplayConsumerLagHigh" and a["labels"]["topic"] == CAPTURE
    ]
    return states[0] if states else None


def test_real_prometheus_sees_the_lag_alert_fire_and_resolve(
    stack: Stack, promtool: str, tmp_path: Path
) -> None:
    """The backlog is held, not raced: takes close by size only (never by time here), so
    `held` messages, fewer than one take, stay unacknowledged and the lag stays above the
    threshold for as long as the alert needs, however fast or loaded the machine; the
    filler completes the take, which is written and committed, and the lag drains.

    (Produced as one backlog that the worker drains freely, the lag stayed above the
    threshold only ~4 s here, against a scrape, an evaluation, a 2 s report and the 2 s
    `for`: the alert often never reached firing on an idle machine.)"""
    held, take, threshold = 300, 400, 100
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        if rule["alert"] == "ReplayConsumerLagHigh":  # short thresholds for a test
            rule["expr"] = rule["expr"].replace("> 10000", f"> {threshold}")
            rule["for"] = "2s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    worker = stack.worker(take_max_messages=str(take), take_max_seconds="3600").start()
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "replay-ingest",
                        "static_configs": [{"targets": [f"127.0.0.1:{worker.metrics_port}"]}],
                    }
                ],
            }
        )
    )
    prometheus = spawn(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
        tmp_path / "prometheus.log",
    )
    count = "SELECT count() FROM session_recording_events FINAL"
    try:
        wait_until(
            lambda: worker.metric("replay_assigned_partitions", topic=CAPTURE) == PARTITIONS,
            60,
            "the worker consuming every partition",
        )
        stack.produce([builders.capture(session_id=f"lag-{i}") for i in range(held)])
        wait_until(lambda: lag_alert(port) == "firing", 90, "the lag alert firing")
        pending = prometheus_get(
            port,
            "/api/v1/query?query="
            + urllib.parse.quote(f'ALERTS{{topic="{CAPTURE}",alertstate="pending"}}[10m]'),
        )
        assert pending, "the alert fired without being pending for its `for` first"
        wait_until(
            lambda: worker.metric("replay_consumer_lag_messages", topic=CAPTURE) == held,
            30,
            "the lag of the whole held backlog",
        )
        assert worker.scalar(count) == 0  # held: nothing handled, nothing written
        stack.produce([builders.capture(session_id=f"lag-{i}") for i in range(held, take)])
        wait_until(lambda: lag_alert(port) is None, 180, "the lag alert resolved")
        wait_until(lambda: worker.scalar(count) == take, 60, "every row of the backlog")
    finally:
        stop_process(prometheus)
        if worker.proc is not None and worker.proc.poll() is None:
            # the other agents hold their partial takes too (size-only takes here): a
            # graceful stop would wait for acknowledgements that never come
            worker.kill9()
