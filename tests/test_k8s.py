"""Workers as Kubernetes pods (#33): the rendered Deployment, checked (resources, the Secret reference, the
liveness probe on the worker's heartbeat, graceful stop, no URI inline); and the probe itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import yaml

import tensorlab


def _tensorlab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tensorlab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_the_manifest_requests_gpus_reads_the_uri_from_a_secret_and_probes_the_heartbeat():
    secret_uri = "mongodb://lab:s3cret@db.example.com/"
    done = _tensorlab("k8s", "manifest", "--workers", "3", "--gpus", "2", "--image", "registry.example.com/tl:1",
                      "--secret", "lab-db", "--study", "mnist", "--query", '{"tags.queue": "gpu"}',
                      env={"TENSORLAB_MONGODB_URI": secret_uri})
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout and "db.example.com" not in done.stdout and "&id" not in done.stdout
    manifest = yaml.safe_load(done.stdout)
    assert manifest["kind"] == "Deployment" and manifest["spec"]["replicas"] == 3
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2 == container["resources"]["requests"][
        "nvidia.com/gpu"]
    env = {item["name"]: item for item in container["env"]}
    assert env["TENSORLAB_MONGODB_URI"]["valueFrom"]["secretKeyRef"] == {"name": "lab-db", "key": "uri"}
    assert "value" not in env["TENSORLAB_MONGODB_URI"]
    command = container["command"]
    assert command[:2] == ["tensorlab", "worker"] and "--alive-file" in command and "--uri" not in command
    assert command[command.index("--query") + 1] == '{"tags.queue": "gpu"}'
    probe = container["livenessProbe"]["exec"]["command"]
    assert probe[:3] == ["tensorlab", "k8s", "probe"] and probe[probe.index("--alive-file") + 1] == \
        command[command.index("--alive-file") + 1]
    assert pod["terminationGracePeriodSeconds"] >= 300  # SIGTERM: finish the batch, checkpoint, requeue
    selector = manifest["spec"]["selector"]["matchLabels"]
    assert selector.items() <= manifest["spec"]["template"]["metadata"]["labels"].items()


def test_bad_manifest_input_is_refused_with_the_reason():
    for args, reason in ((["--workers", "0", "--image", "x:1"], "--workers"),
                         (["--workers", "1", "--image", "x:1", "--gpus", "-1"], "--gpus"),
                         (["--workers", "1", "--image", "https://x"], "--image"),
                         (["--workers", "1", "--image", "x:1", "--secret", "Bad_Name"], "--secret")):
        done = _tensorlab("k8s", "manifest", *args)
        assert done.returncode == 2 and reason in done.stderr, done.stderr


def test_the_probe_follows_the_workers_heartbeat(tdb, tmp_path):
    alive = tmp_path / "alive"
    assert _tensorlab("k8s", "probe", "--alive-file", str(alive)).returncode == 1  # no heartbeat yet
    worker = tensorlab.worker.Worker(tdb, max_idle_s=0.0, poll_interval_s=0.05,
                                     on_beat=lambda: alive.touch())
    worker.run()  # an empty queue: one poll, then it leaves
    assert alive.exists() and _tensorlab("k8s", "probe", "--alive-file", str(alive), "--max-age", "60").returncode == 0
    old = time.time() - 120
    os.utime(alive, (old, old))
    stale = _tensorlab("k8s", "probe", "--alive-file", str(alive), "--max-age", "60")
    assert stale.returncode == 1 and "last heartbeat" in stale.stderr
