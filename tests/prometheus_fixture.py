"""A real Prometheus (Debian's ``prometheus`` binary) on loopback, configured from grafana/.

Use it as a context manager or through the ``start_prometheus`` fixture::

    with run_prometheus(["127.0.0.1:18000"], tmp_dir=tmp_path) as prom:
        prom.wait_for_data("voice_ai_active_calls")
        prom.query("sum(voice_ai_active_calls)")

The config is ``grafana/prometheus.yml`` with: scrape and evaluation every second, the
``voice_ai`` job's targets replaced by the given loopback targets, the ``ray`` job's service
discovery file replaced by a temp file listing ``ray_targets`` (written in Ray's own format), and
the rule files given as absolute paths, so the committed alert rules load too.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = ["PrometheusQueryError", "RunningPrometheus", "run_prometheus", "start_prometheus"]

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


class PrometheusQueryError(AssertionError):
    """Prometheus refused a query (bad PromQL, unknown function, ...)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningPrometheus:
    url: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as e:  # 400/422 carry Prometheus's own error message
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{path} {params}: {body.get('errorType')}: "
                                       f"{body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (a scalar comes back as one sample)."""
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(self, check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            if check():
                return
            time.sleep(0.25)
        raise TimeoutError(f"waited {timeout_s} s for {what}; log: {self.log_tail()}")

    def wait_for_data(self, expr: str, timeout_s: float = 60) -> list[dict[str, Any]]:
        """Wait until ``expr`` returns at least one finite sample; return the result."""
        result: list[dict[str, Any]] = []

        def has_data() -> bool:
            nonlocal result
            result = self.query(expr)
            return any(math.isfinite(float(s["value"][1])) for s in result)

        self.wait_for(has_data, f"data from {expr}", timeout_s)
        return result

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/targets")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("/api/v1/rules")["groups"] for rule in group["rules"]]

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _check_loopback(targets: Sequence[str]) -> None:
    for target in targets:
        host = target.rsplit(":", 1)[0]
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"tests scrape loopback only, got {target}")


def derive_config(
    work: Path,
    voice_ai_targets: Sequence[str],
    ray_targets: Sequence[str],
    scrape_interval_s: float,
) -> Path:
    """Write the test config derived from grafana/prometheus.yml into ``work``."""
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text(encoding="utf-8"))
    interval = f"{max(1, round(scrape_interval_s))}s"
    config["global"].update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    config["rule_files"] = [str((GRAFANA / f).resolve()) for f in config.get("rule_files", [])]
    sd_file = work / "prom_metrics_service_discovery.json"
    # Ray writes a list of {"labels": {"job": "ray"}, "targets": [...]}
    sd_file.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": list(ray_targets)}]))
    for job in config["scrape_configs"]:
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
        if job["job_name"] == "voice_ai":
            job["static_configs"] = [{"targets": list(voice_ai_targets)}]
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(sd_file)]
            sd["refresh_interval"] = "1s"
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def run_prometheus(
    voice_ai_targets: Sequence[str],
    ray_targets: Sequence[str] = (),
    *,
    tmp_dir: Path | None = None,
    scrape_interval_s: float = 1.0,
    ready_timeout_s: float = 60,
) -> Iterator[RunningPrometheus]:
    """Start Prometheus on 127.0.0.1 with the derived config; stop it on exit."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed: run `make system-deps`")
    _check_loopback([*voice_ai_targets, *ray_targets])
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="prometheus-") as work_dir:
        work = Path(work_dir)
        config_path = derive_config(work, voice_ai_targets, ray_targets, scrape_interval_s)
        port = free_port()
        log_path = work / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={config_path}", f"--storage.tsdb.path={work / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
                 "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=work,
            )
        prom = RunningPrometheus(f"http://127.0.0.1:{port}", config_path, log_path, process)
        try:
            prom.wait_for(lambda: _ready(prom.url), "prometheus to be ready", ready_timeout_s)
            yield prom
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


StartPrometheus = Callable[..., RunningPrometheus]


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[StartPrometheus]:
    """``start_prometheus(voice_ai_targets, ray_targets=())``: started now, stopped at teardown."""
    running: list[AbstractContextManager[RunningPrometheus]] = []

    def start(voice_ai_targets: Sequence[str], ray_targets: Sequence[str] = (),
              **kwargs: Any) -> RunningPrometheus:
        manager = run_prometheus(voice_ai_targets, ray_targets, tmp_dir=tmp_path, **kwargs)
        prom = manager.__enter__()
        running.append(manager)
        return prom

    yield start
    for manager in reversed(running):
        manager.__exit__(None, None, None)
