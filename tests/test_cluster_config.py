"""cluster.yaml (on-prem) and cluster.aws.yaml pass Ray's own launcher validation, start what
the runbook promises, and `make cluster-up` / `cluster-down` run `ray up` / `ray down` on them."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_FILES = ("cluster.yaml", "cluster.aws.yaml")


def _prepared(name: str) -> dict[str, Any]:
    """What `ray up` does before launching: fill defaults, then validate against the schema."""
    raw = yaml.safe_load((ROOT / name).read_text())
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_cluster_file_passes_rays_validator(name: str) -> None:
    config = _prepared(name)
    assert config["cluster_name"] == "voice-ai"
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_head_starts_ray_with_dashboard_metrics_port_and_grafana_then_deploys_serve(
        name: str) -> None:
    config = _prepared(name)
    head = " && ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head
    assert "--dashboard-host=0.0.0.0" in head
    assert "--metrics-export-port=8080" in head
    assert "RAY_GRAFANA_HOST=" in head and "RAY_PROMETHEUS_HOST=" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    # Serve is deployed after Ray starts, from the file in the repository
    assert config["head_start_ray_commands"][-1].endswith("serve deploy serve_config.yaml")
    workers = " ".join(config["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in workers and "--metrics-export-port=8080" in workers


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_setup_installs_the_pinned_project_and_its_debian_packages(name: str) -> None:
    config = _prepared(name)
    setup = " ".join(config["setup_commands"])  # prepare_config merges head/worker setup in
    for package in ("build-essential", "cmake", "sqlite3", "python3.11-venv"):
        assert package in setup
    assert "make install" in setup  # pip install -e . with pyproject.toml's pins
    assert "prometheus" in " ".join(config["head_setup_commands"])
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"ray[serve,default]==2.60.0"' in pyproject and '"faster-whisper==1.2.1"' in pyproject
    assert config["file_mounts"] == {"/opt/voice-ai": "."}
    assert ".venv" in config["rsync_exclude"] and "data" in config["rsync_exclude"]


def test_aws_has_cpu_workers_for_calls_and_gpu_workers_from_zero_for_whisper() -> None:
    types = _prepared("cluster.aws.yaml")["available_node_types"]
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    cpu = [t for n, t in types.items() if n != "head" and not t["resources"].get("GPU")]
    assert len(gpu) == 1 and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 1
    assert len(cpu) == 1 and cpu[0]["min_workers"] >= 1 and cpu[0]["resources"]["CPU"] >= 8


def test_on_prem_lists_head_and_worker_ips() -> None:
    config = _prepared("cluster.yaml")
    assert config["provider"]["type"] == "local"
    assert config["provider"]["head_ip"] and len(config["provider"]["worker_ips"]) >= 1
    node_type = config["available_node_types"][config["head_node_type"]]
    assert node_type["max_workers"] == len(config["provider"]["worker_ips"])


def test_serve_config_validates_and_names_the_app_builder() -> None:
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(raw)
    (app,) = schema.applications
    assert app.import_path == "deployments.app:build_app"
    assert schema.http_options.port == 8000


@pytest.mark.parametrize(("target", "expected"), [
    ("cluster-up", "ray up -y cluster.yaml"),
    ("cluster-down", "ray down -y cluster.yaml"),
    ("cluster-up CLUSTER=cluster.aws.yaml", "ray up -y cluster.aws.yaml"),
])
def test_make_targets_wrap_ray_up_and_down(target: str, expected: str) -> None:
    # -n prints the recipe without running it; -o install skips the install prerequisite
    out = subprocess.run(["make", "-n", "-o", "install", *target.split()], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert expected in out
