"""A single-node SLURM (munged, slurmctld, slurmd) on loopback in a temporary folder.

Used by tests/test_slurm.py and benchmarks/slurm_build.py. The packages come from the
operating system (``.ci/install-slurm``); the daemons run as the current user (root), with
their config, state, sockets and logs in ``root``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "squeue", "scancel", "sbatch")


def unavailable() -> str | None:
    """Why the daemons cannot run here, or None."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}): run .ci/install-slurm"
    if os.geteuid() != 0:
        return "the single-node SLURM of the tests runs its daemons as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`env` has ``SLURM_CONF``."""

    def __init__(self, root: Path, cpus: int = 2, partition: str = "debug") -> None:
        self.root = Path(root)
        self.cpus = cpus
        self.partition = partition
        self.host = socket.gethostname().split(".")[0]
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _munge(self) -> None:
        munge = self.root / "munge"
        munge.mkdir(parents=True, exist_ok=True)
        munge.chmod(0o755)
        key = munge / "munge.key"
        subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True)
        key.chmod(0o600)
        self.procs.append(
            subprocess.Popen(
                ["munged", "--foreground", "--force", f"--socket={munge}/munge.sock",
                 f"--key-file={key}", f"--pid-file={munge}/munged.pid",
                 f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        self._until(lambda: (munge / "munge.sock").exists(), "munged socket")

    def _config(self) -> None:
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
        memory = int(re.search(r"RealMemory=(\d+)", node.stdout).group(1))
        r = self.root
        lines = [
            "ClusterName=plankton", f"SlurmctldHost={self.host}(127.0.0.1)",
            "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={r}/munge/munge.sock",
            "CredType=cred/munge",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=1024", "MailProg=/bin/true", "ReturnToService=2",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/slurmctld.log", f"SlurmdLogFile={r}/slurmd.log",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} "
            "State=UNKNOWN",
            f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]  # fmt: skip
        (r / "state").mkdir(exist_ok=True)
        (r / "spool").mkdir(exist_ok=True)
        self.conf.write_text("\n".join(lines) + "\n")

    def _until(self, ready, what: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > end:
                self.stop()
                raise RuntimeError(
                    f"single-node SLURM: no {what} after {timeout:g} s ({self.root})"
                )
            time.sleep(0.2)

    def _idle(self) -> bool:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env
        )
        return out.returncode == 0 and out.stdout.strip().startswith("idle")

    def start(self) -> SlurmCluster:
        """Start munged, slurmctld and slurmd; return when the node is idle."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._munge()
        self._config()
        for daemon in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            self.procs.append(
                subprocess.Popen(daemon, env=self.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            )  # fmt: skip
        self._until(self._idle, "idle node")
        return self

    def jobs(self) -> list[str]:
        """Ids of the jobs in ``squeue``."""
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                             env=self.env, check=True)  # fmt: skip
        return out.stdout.split()

    def stop(self) -> None:
        """Cancel every job, stop the daemons (waiting for them) and any job step left."""
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        steps = subprocess.run(["pgrep", "-x", "slurmstepd"], capture_output=True, text=True)
        for pid in steps.stdout.split():
            try:
                if str(self.root) in Path(f"/proc/{pid}/environ").read_text(errors="replace"):
                    os.kill(int(pid), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
