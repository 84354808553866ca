"""Runs inside Airflow's virtual environment (``.venv-airflow``), started by tests/test_dags.py.

``bag``: parse the dags/ folder the way Airflow's DAG processor does (a bundle DagBag) and print the import
errors and each DAG's task graph as JSON.  ``test DAG_ID LOGICAL_DATE CONF_JSON [MARK_SUCCESS_REGEX]``: one
real run with ``dag.test()`` (Airflow's in-process runner, a real metadata database, real task instances)
and print the run's state, every task's state and each run task's seconds as JSON on the last line.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag

DAGS = Path(__file__).resolve().parents[1] / "dags"


def bag() -> BundleDagBag:
    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)


def main(argv: list[str]) -> int:
    b = bag()
    if argv[0] == "bag":
        graphs = {dag_id: {t.task_id: sorted(t.downstream_task_ids) for t in d.tasks}
                  for dag_id, d in b.dags.items()}
        schedules = {dag_id: type(d.timetable).__name__ for dag_id, d in b.dags.items()}
        print(json.dumps({"errors": {k: v for k, v in b.import_errors.items()}, "graphs": graphs,
                          "schedules": schedules}))
        return 0
    dag_id, logical, conf = argv[1], argv[2], json.loads(argv[3])
    mark = argv[4] if len(argv) > 4 and argv[4] else None
    dag = b.get_dag(dag_id)
    run = dag.test(logical_date=datetime.fromisoformat(logical).replace(tzinfo=UTC), run_conf=conf, mark_success_pattern=mark)
    states = {ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state)
              for ti in run.get_task_instances()}
    seconds = {ti.task_id: round((ti.end_date - ti.start_date).total_seconds(), 1)
               for ti in run.get_task_instances() if ti.start_date and ti.end_date}
    print(json.dumps({"state": str(run.state.value if hasattr(run.state, "value") else run.state),
                      "tasks": states, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
