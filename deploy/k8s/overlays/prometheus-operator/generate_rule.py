"""Write prometheusrule.yaml, the PrometheusRule of deploy/prometheus/alerts.yml.

    python deploy/k8s/overlays/prometheus-operator/generate_rule.py          # write it
    python deploy/k8s/overlays/prometheus-operator/generate_rule.py --check  # exit 1 if stale

The rule file is copied as text, indented under `spec:`, so the PrometheusRule keeps its
comments (why each threshold) and cannot differ from what `promtool` tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parents[3] / "deploy" / "prometheus" / "alerts.yml"
TARGET = HERE / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/alerts.yml by generate_rule.py beside this file: do not edit.
# After changing the alerts run: python deploy/k8s/overlays/prometheus-operator/generate_rule.py
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: triage-alerts
  labels:
    app.kubernetes.io/name: triage-alerts
spec:
"""


def render(alerts: str) -> str:
    """The PrometheusRule manifest whose `spec` is the rule file ``alerts``."""
    indented = [f"  {line}" if line.strip() else "" for line in alerts.splitlines()]
    return HEADER + "\n".join(indented) + "\n"


def main(argv: list[str]) -> int:
    expected = render(ALERTS.read_text())
    if argv[1:] == ["--check"]:
        if not TARGET.is_file() or TARGET.read_text() != expected:
            print(f"{TARGET} is stale: run python {Path(__file__).as_posix()}", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.write_text(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
