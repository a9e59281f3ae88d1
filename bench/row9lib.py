"""What bench/row9-paired.py and bench/row9-phases.py share: the files of
the last `BENCH_ROWS=9 bench/run.sh` in bench/_out/work, the idle counter,
and that run's loopback sshd, started again for a script's rounds."""
import contextlib
import os
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
W = os.path.join(HERE, "_out", "work")
BIN = os.environ.get("BENCH_BIN", os.path.join(HERE, "..", "bin"))
TCK = os.sysconf("SC_CLK_TCK")
SIZE = os.path.getsize(f"{W}/sftp/in.bin")
CFG = f"{W}/ssh/ssh_config"


def idle():
    """Core-seconds both cores sat idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[4]) / TCK


@contextlib.contextmanager
def sshd():
    """The bench's sshd, running for the block; yields its process. The
    1-of-1 share file, which the bench run removes, is made first."""
    if not os.path.exists(f"{W}/sftp/share1/share-0.bks"):
        subprocess.run(f"{BIN}/bk-split -q -k 1 -n 1 -o {W}/sftp/share1 < {W}/sftp/in.bin", shell=True, check=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-f", f"{W}/ssh/sshd_config", "-D", "-e"],
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(0.5)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
