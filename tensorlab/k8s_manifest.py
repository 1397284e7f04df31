"""`tensorlab k8s manifest`: a Deployment of TensorLab worker pods, rendered here, applied by you.

What it holds and why: GPU requests (`nvidia.com/gpu`) per pod; the database URI from a Secret (`secretKeyRef`),
never inline, so `kubectl get deploy -o yaml` shows no password; a liveness probe on the worker's own
heartbeat (a file the worker touches on every poll and job heartbeat: a worker stuck in a dead connection or a
hung step is restarted, a long epoch is not); `terminationGracePeriodSeconds` long enough for SIGTERM to finish
the batch, checkpoint and requeue the job (the worker's graceful stop). A pod that never schedules shows in
`kubectl get pods` as Pending with its reason; its jobs simply stay queued for other workers.
It is rendered and checked by the tests here, not run on a cluster.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput

ALIVE_FILE = "/tmp/tensorlab-worker.alive"  # noqa: S108 - inside the pod's own filesystem
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass
class WorkerPods:
    workers: int
    image: str
    gpus: int = 0
    secret: str = "tensorlab-mongodb"
    secret_key: str = "uri"
    name: str = "tensorlab-worker"
    namespace: str | None = None
    db: str = "tensorlab"
    study: str | None = None
    query: dict | None = None
    lease_s: float = 60.0
    grace_s: int = 600
    cpu: str = "2"
    memory: str = "8Gi"
    allow_code: bool = False

    def check(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InvalidInput(f"Invalid value for --workers: {self.workers!r}. Expected a whole number >= 1.")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise InvalidInput(f"Invalid value for --gpus: {self.gpus!r}. Expected a whole number >= 0.")
        if not self.image or "://" in self.image or " " in self.image:
            raise InvalidInput(f"Invalid value for --image: {self.image!r}. Expected an image reference such as "
                               "registry.example.com/lab/tensorlab:1.0.")
        for flag, value in (("--name", self.name), ("--secret", self.secret)):
            if not _NAME.match(value):
                raise InvalidInput(f"Invalid value for {flag}: {value!r}. Expected a Kubernetes name (lower-case "
                                   "letters, digits and '-', at most 63).")


def _worker_command(pods: WorkerPods) -> list[str]:
    command = ["tensorlab", "worker", "--db", pods.db, "--lease", f"{pods.lease_s:g}", "--alive-file", ALIVE_FILE]
    if pods.study:
        command += ["--study", pods.study]
    if pods.query:
        command += ["--query", json.dumps(pods.query)]
    if pods.allow_code:
        command.append("--allow-code")
    return command


def deployment(pods: WorkerPods) -> dict[str, Any]:
    """The Deployment as a dict (what `render` writes as YAML)."""
    pods.check()
    resources: dict[str, Any] = {"requests": {"cpu": pods.cpu, "memory": pods.memory},
                                 "limits": {"memory": pods.memory}}
    if pods.gpus:
        resources["requests"]["nvidia.com/gpu"] = pods.gpus
        resources["limits"]["nvidia.com/gpu"] = pods.gpus  # extended resources: requests must equal limits
    stale_s = int(max(120, 3 * pods.lease_s))  # heartbeats come every lease/3: several missed ones mean stuck
    container = {
        "name": "worker", "image": pods.image, "command": _worker_command(pods),
        "env": [{"name": "TENSORLAB_MONGODB_URI",
                 "valueFrom": {"secretKeyRef": {"name": pods.secret, "key": pods.secret_key}}},
                {"name": "PYTHONUNBUFFERED", "value": "1"}],
        "resources": resources,
        "livenessProbe": {"exec": {"command": ["tensorlab", "k8s", "probe", "--alive-file", ALIVE_FILE,
                                               "--max-age", str(stale_s)]},
                          "initialDelaySeconds": 60, "periodSeconds": 30, "failureThreshold": 3},
    }
    labels = {"app.kubernetes.io/name": "tensorlab-worker", "app.kubernetes.io/instance": pods.name}
    metadata: dict[str, Any] = {"name": pods.name, "labels": dict(labels)}  # copies: YAML without anchors
    if pods.namespace:
        metadata["namespace"] = pods.namespace
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {"replicas": pods.workers, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"terminationGracePeriodSeconds": pods.grace_s, "restartPolicy": "Always",
                                           "containers": [container]}}}}


def render(pods: WorkerPods) -> str:
    """YAML text (JSON is YAML too; written as YAML when PyYAML is installed, as it is with JupyterLab)."""
    manifest = deployment(pods)
    try:
        import yaml
    except ImportError:
        return json.dumps(manifest, indent=2) + "\n"
    return yaml.safe_dump(manifest, sort_keys=False)
