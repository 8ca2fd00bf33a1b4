"""Write grafana-dashboards.yaml, the Grafana dashboards of deploy/grafana/dashboards as
ConfigMaps that Grafana's dashboard sidecar (kube-prometheus-stack's) loads.

    python deploy/k8s/overlays/prometheus-operator/generate_dashboards.py          # write it
    python deploy/k8s/overlays/prometheus-operator/generate_dashboards.py --check  # exit 1 if stale

One ConfigMap per dashboard file (triage.json, trends.json: every one compose provisions),
labelled `grafana_dashboard: "1"`, the label the sidecar looks for by default. Each file is
copied as text into a literal block, so the ConfigMap holds exactly what compose's Grafana
loads and the tests check. Kustomize's configMapGenerator cannot do it: it reads no file
outside the overlay's folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE.parents[3] / "deploy" / "grafana" / "dashboards"
TARGET = HERE / "grafana-dashboards.yaml"
#: The folder the sidecar files the dashboards in, where it reads this annotation
#: (kube-prometheus-stack: `grafana.sidecar.dashboards.folderAnnotation: grafana_folder`).
FOLDER = "Complaint triage"

HEADER = """\
# Generated from deploy/grafana/dashboards/{source} by generate_dashboards.py beside this file: do
# not edit. After changing a dashboard run:
#   python deploy/k8s/overlays/prometheus-operator/generate_dashboards.py
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    grafana_dashboard: "1"
  annotations:
    grafana_folder: {folder}
data:
  {source}: |
"""


def config_map_name(source: Path) -> str:
    """The ConfigMap of a dashboard file: triage.json → triage-dashboard-triage."""
    return f"triage-dashboard-{source.stem}"


def render_one(source: Path) -> str:
    """The ConfigMap whose one key is the dashboard file ``source``, as it is."""
    text = source.read_text()
    lines = [f"    {line}" if line.strip() else "" for line in text.splitlines()]
    header = HEADER.format(name=config_map_name(source), source=source.name, folder=FOLDER)
    return header + "\n".join(lines) + "\n"


def sources(folder: Path = DASHBOARDS) -> list[Path]:
    """Every dashboard file of ``folder``, by name."""
    return sorted(folder.glob("*.json"))


def render(files: list[Path]) -> str:
    """The manifest file: one ConfigMap per dashboard of ``files``."""
    return "---\n".join(render_one(path) for path in files)


def main(argv: list[str]) -> int:
    expected = render(sources())
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
