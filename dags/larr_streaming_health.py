"""larr_streaming_health: every five minutes, is the real-time scene state flowing and fresh?

Three checks, each its own task so the failing one is named in the UI: the consumer group's lag per
partition, the dead-letter count (both ``larr stream health``), and the freshness of every region's state in
the online store (the ``online`` Great Expectations suite).  Thresholds come from the config's ``health``
and ``quality`` sections.  A crossed threshold fails the task loudly (exit 1, the reason in the log); wire
``on_failure_callback`` or Airflow's notifiers to your pager.  Extra settings (environment variables):
``LARR_KAFKA`` [127.0.0.1:9092], ``LARR_TOPIC`` [scene-events], ``LARR_GROUP`` [larr-scene-state].
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from larr_common import PARAMS, larr, paths
from larr_common import gate as quality_gate

STREAM = {"bootstrap": os.environ.get("LARR_KAFKA", "127.0.0.1:9092"),
          "topic": os.environ.get("LARR_TOPIC", "scene-events"),
          "group": os.environ.get("LARR_GROUP", "larr-scene-state")}


@dag(
    dag_id="larr_streaming_health",
    schedule=timedelta(minutes=5),
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=4),
    default_args={"owner": "larr", "retries": 0},  # a health probe reports now; the next run is the retry
    params={**PARAMS, **STREAM},
    tags=["larr", "health"],
    doc_md=__doc__,
)
def larr_streaming_health():
    @task.bash
    def kafka_health(params: dict | None = None) -> str:
        """Lag per partition and dead letters against health.max_lag / health.max_dead_letters."""
        return larr(params, "stream", "health", "--bootstrap", params["bootstrap"], "--topic", params["topic"],
                    "--group", params["group"])

    @task.bash
    def online_freshness(params: dict | None = None, ds: str | None = None) -> str:
        """Age of each region's real-time scene state in the online store against quality's bound."""
        return quality_gate(params, ds, "online", paths(params, ds)["repo"], "--as-of", "now")

    [kafka_health(), online_freshness()]


larr_streaming_health()
