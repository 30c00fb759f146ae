"""cluster.yaml (on-prem) and cluster.aws.yaml pass Ray's own launcher validation, start what
the runbook promises, and `make cluster-up` / `cluster-down` run `ray up` / `ray down` on them."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

from voice_ai.config import Settings

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
    assert config["file_mounts"]["/opt/voice-ai"] == "."
    assert ".venv" in config["rsync_exclude"] and "data" in config["rsync_exclude"]


# --- security (issue #15): token auth everywhere, dashboard on loopback, no secrets copied ----
def _ray_starts(config: dict[str, Any], key: str) -> list[str]:
    return [c for c in config[key] if "ray start" in c]


def _dashboard_hosts(config: dict[str, Any]) -> list[str]:
    """Where the head's dashboard listens (an empty list: Ray's default)."""
    (head,) = _ray_starts(config, "head_start_ray_commands")
    return re.findall(r"--dashboard-host[= ](\S+)", head)


def _starts_without_token(config: dict[str, Any]) -> list[str]:
    """Every `ray start` / `serve deploy` not preceded by RAY_AUTH_MODE=token."""
    commands = [*_ray_starts(config, "head_start_ray_commands"),
                *_ray_starts(config, "worker_start_ray_commands"),
                *(c for c in config["head_start_ray_commands"] if "serve deploy" in c)]
    open_ = []
    for command in commands:
        before = re.split(r"ray start|serve deploy", command, maxsplit=1)[0]
        if not re.search(r"\bRAY_AUTH_MODE=token\b", before):
            open_.append(command)
    return open_


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_the_dashboard_listens_on_loopback_only(name: str) -> None:
    assert _dashboard_hosts(_prepared(name)) == ["127.0.0.1"]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_every_node_starts_ray_with_token_authentication(name: str) -> None:
    config = _prepared(name)
    assert _ray_starts(config, "worker_start_ray_commands")
    assert _starts_without_token(config) == []


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_the_checks_catch_an_open_dashboard_and_a_node_without_token(name: str) -> None:
    """What issue #15 found (dashboard on 0.0.0.0, no token) fails the two checks above."""
    raw = yaml.safe_load((ROOT / name).read_text())
    opened = copy.deepcopy(raw)
    opened["head_start_ray_commands"] = [
        c.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")
        for c in raw["head_start_ray_commands"]]
    opened["worker_start_ray_commands"] = [
        c.replace("RAY_AUTH_MODE=token", "") for c in raw["worker_start_ray_commands"]]
    assert _dashboard_hosts(opened) == ["0.0.0.0"]
    assert len(_starts_without_token(opened)) == 1


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_ray_up_provisions_the_token_from_a_file_git_ignores(name: str) -> None:
    config = _prepared(name)
    mounts = config["file_mounts"]
    assert "~/.ray/auth_token" in mounts, f"{name}: the token is not provisioned"
    local = mounts["~/.ray/auth_token"]
    ignored = subprocess.run(["git", "check-ignore", "-q", local], cwd=ROOT)
    assert ignored.returncode == 0, f"{local} is not gitignored"
    assert any("chmod 600 ~/.ray/auth_token" in c for c in config["setup_commands"])


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_prometheus_on_the_head_listens_on_loopback(name: str) -> None:
    setup = " ".join(_prepared(name)["head_setup_commands"])
    assert "--web.listen-address=127.0.0.1:9090" in setup
    assert "--config.file=/opt/voice-ai/grafana/prometheus.yml" in setup


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_no_secret_is_copied_to_the_nodes(name: str) -> None:
    config = _prepared(name)
    excluded = set(config["rsync_exclude"])
    assert {".env", ".env.*", "secrets"} <= excluded, f"{name}: {excluded}"
    for local in config["file_mounts"].values():
        assert ".env" not in Path(local).name, f"{name} mounts {local}"


def test_make_cluster_token_keeps_the_token_private() -> None:
    out = subprocess.run(["make", "-n", "-o", "install", "cluster-token"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "umask 077" in out and "secrets/ray_auth_token" in out


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
    # the proxy's backstop deadline sits above the app's own (HTTP_REQUEST_TIMEOUT_S)
    assert schema.http_options.request_timeout_s is not None
    assert schema.http_options.request_timeout_s > Settings().http_request_timeout_s


@pytest.mark.parametrize(("target", "expected"), [
    ("cluster-up", "ray up -y cluster.yaml"),
    ("cluster-down", "ray down -y cluster.yaml"),
    ("cluster-up CLUSTER=cluster.aws.yaml", "ray up -y cluster.aws.yaml"),
    ("cluster-token", "secrets/ray_auth_token"),
])
def test_make_targets_wrap_ray_up_and_down(target: str, expected: str) -> None:
    # -n prints the recipe without running it; -o install skips the install prerequisite
    out = subprocess.run(["make", "-n", "-o", "install", *target.split()], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert expected in out
