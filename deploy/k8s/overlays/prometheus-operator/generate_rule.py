"""Write prometheusrule.yaml, the PrometheusRules of deploy/prometheus's alert rule files.

    python deploy/k8s/overlays/prometheus-operator/generate_rule.py          # write it
    python deploy/k8s/overlays/prometheus-operator/generate_rule.py --check  # exit 1 if stale

One PrometheusRule per rule file that prometheus.yml loads (alerts.yml, trends_alerts.yml).
Each file is copied as text, indented under `spec:`, so the PrometheusRule keeps its comments
(why each threshold) and cannot differ from what `promtool` tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMETHEUS = HERE.parents[3] / "deploy" / "prometheus"
# PrometheusRule name → the rule file it carries, in the order of prometheus.yml's rule_files.
SOURCES = {
    "triage-alerts": PROMETHEUS / "alerts.yml",
    "triage-trends-alerts": PROMETHEUS / "trends_alerts.yml",
}
TARGET = HERE / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/{source} by generate_rule.py beside this file: do not edit.
# After changing the alerts run: python deploy/k8s/overlays/prometheus-operator/generate_rule.py
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
"""


def render_one(name: str, source: str, alerts: str) -> str:
    """The PrometheusRule ``name`` whose `spec` is the rule file ``alerts`` (named ``source``)."""
    indented = [f"  {line}" if line.strip() else "" for line in alerts.splitlines()]
    return HEADER.format(name=name, source=source) + "\n".join(indented) + "\n"


def render(sources: dict[str, Path]) -> str:
    """The manifest file: one PrometheusRule per rule file of ``sources``."""
    return "---\n".join(
        render_one(name, path.name, path.read_text()) for name, path in sources.items()
    )


def main(argv: list[str]) -> int:
    expected = render(SOURCES)
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
