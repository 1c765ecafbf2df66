"""Writes deploy/k8s/base/monitoring/prometheusrule.yaml and lapor.json from their sources,
deploy/prometheus/alerts.yml and deploy/grafana/dashboards/lapor.json.

kustomize reads no file outside its folder and cannot turn a rules file into a
PrometheusRule, so both are committed copies; tests/deploy/test_k8s_overlays.py fails when
they drift. Run after changing either source:

    python deploy/k8s/base/monitoring/sync.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parents[2]

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by deploy/k8s/base/monitoring/sync.py: edit the
# source and run `python deploy/k8s/base/monitoring/sync.py`; a test fails when the two differ.
# The Prometheus Operator loads it when its ruleSelector matches these labels (an overlay
# adds e.g. `release: <your kube-prometheus-stack release>`).
"""


def prometheus_rule() -> dict:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "lapor-alerts",
                     "labels": {"app.kubernetes.io/name": "lapor-alerts"}},
        "spec": {"groups": groups},
    }


def main() -> None:
    text = yaml.safe_dump(prometheus_rule(), sort_keys=False, allow_unicode=True, width=100)
    (HERE / "prometheusrule.yaml").write_text(HEADER + text)
    shutil.copyfile(DEPLOY / "grafana" / "dashboards" / "lapor.json", HERE / "lapor.json")


if __name__ == "__main__":
    main()
