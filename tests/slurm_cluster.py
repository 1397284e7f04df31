"""A real one-node Slurm cluster for tests, started without systemd from Debian's slurmctld, slurmd and munge.

Everything lives in one temporary folder: a private munge key and socket (its folder 0755, as munged asks), a
`slurm.conf` naming one node with 2 fake GPUs (`Gres=gpu:2`, gres.conf `Count=2`), `slurmctld -D` and
`slurmd -D` in the background. Clients find it through $SLURM_CONF. Ready in seconds once installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
NODE = "tlnode"


def slurm_installed() -> bool:
    return os.geteuid() == 0 and all(shutil.which(name) or Path(f"/usr/sbin/{name}").exists() for name in DAEMONS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout_s: float = 60.0) -> SlurmCluster:
        self.folder.chmod(0o755)  # munged needs every folder above its socket open to all
        munge = self.folder / "munge"
        munge.mkdir(mode=0o755)
        munge.chmod(0o755)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = munge / "munge.socket"
        self._spawn([_binary("munged"), "-F", "--force", f"--key-file={key}", f"--socket={socket_path}",
                     f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                     f"--seed-file={munge / 'munged.seed'}"])
        self._wait(lambda: socket_path.exists(), timeout_s, "munged did not open its socket")
        for name in ("state", "spool", "logs"):
            (self.folder / name).mkdir()
        host = socket.gethostname()
        self.conf.write_text("\n".join([
            "ClusterName=tensorlab-test", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={socket_path}",
            f"StateSaveLocation={self.folder / 'state'}", f"SlurmdSpoolDir={self.folder / 'spool'}",
            f"SlurmctldPidFile={self.folder / 'slurmctld.pid'}", f"SlurmdPidFile={self.folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.folder / 'logs' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.folder / 'logs' / 'slurmd.log'}",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "GresTypes=gpu", "MpiDefault=none", "ReturnToService=2",
            "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=2", "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "MinJobAge=30", "KillWait=10",
            "OverTimeLimit=0", "MessageTimeout=20",
            f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={os.cpu_count() or 2} RealMemory=1000 "
            "Gres=gpu:2 State=UNKNOWN",
            f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP", ""]))
        for index in range(2):  # the gpu plugin drops file-less GPUs: two stand-in device files
            (self.folder / f"fakegpu{index}").touch()
        (self.folder / "gres.conf").write_text(f"NodeName={NODE} Name=gpu Count=2 File={self.folder}/fakegpu[0-1]\n")
        self._spawn([_binary("slurmctld"), "-D", "-c", "-i", "-f", str(self.conf)])
        self._spawn([_binary("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait(self._idle, timeout_s, "the node did not become idle")
        return self

    def _idle(self) -> bool:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True,
                              timeout=20, check=False)
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def _spawn(self, command: list[str]) -> None:
        log = (self.folder / f"{Path(command[0]).name}.out").open("w")
        self.processes.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            dead = [p.args[0] for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"Slurm test cluster: {what} (exited: {dead}); logs: {self.logs()}")
            time.sleep(0.3)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.folder.rglob("*.log")) + sorted(self.folder.glob("*.out")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def run(self, *command: str, check: bool = True) -> str:
        done = subprocess.run(list(command), env=self.env, capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr}")
        return done.stdout

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True, timeout=30,
                       check=False)
        deadline = time.monotonic() + 20  # let each job's step daemons end and report to slurmd before it goes:
        while time.monotonic() < deadline:  # killed first, they would wait for it for ever
            queued = subprocess.run(["squeue", "-h"], env=self.env, capture_output=True, text=True, timeout=30,
                                    check=False)
            if queued.returncode != 0 or not queued.stdout.strip():
                break
            time.sleep(0.2)
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
