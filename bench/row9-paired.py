#!/usr/bin/env python3
"""Row 9 in paired rounds, with where the CPU and the idle cores go.

Run `BENCH_ROWS=9 bench/run.sh` once first: this reuses the share files,
streams, hosts files and sshd configuration it leaves in bench/_out/work.

    bench/row9-paired.py [ROUNDS]        # default 10

Each round runs, in turn: bk-push to 3 loopback sftp hosts, 3 `sftp put`s at
once, bk-push of a 1-of-1 stream, one `sftp put` (bk-push's hosts fsync=no, as
`put` does not fsync), then bk-push to the 3 hosts as it is by default, each
file fsync'ed, and 3 `sftp put -f`s at once. For each it prints the
median and best wall time; the tool's own CPU, user and system (bk-push, or
the sftp processes), read off /proc as it runs; the CPU of the client side
with its ssh processes (their rusage); that of the sshd side (the listener's
reaped children); and the core-seconds both cores sat idle (/proc/stat).
Then, for each of the two targets, bk-push's wall time over the reference's
in the same round: in how many rounds bk-push was faster, the median ratio
with its 95 % interval, and a sign test.
"""
import math
import os
import resource
import subprocess
import sys
import time

from row9lib import BIN, CFG, SIZE, TCK, W, idle, sshd

SFTP = f"sftp -q -F {CFG} -b"
COMMANDS = {
    "bk-push, 3 hosts": [f"exec {BIN}/bk-push -q --expect-size {SIZE} {W}/sftp/hosts3 < {W}/sftp/in.bks > /dev/null"],
    "3 sftp puts": [f"exec {SFTP} {W}/sftp/batch{i} bkbench > /dev/null" for i in range(3)],
    "bk-push, 1-of-1": [f"exec {BIN}/bk-push -q --expect-size {SIZE} {W}/sftp/hosts11 < {W}/sftp/in1.bks > /dev/null"],
    "1 sftp put": [f"exec {SFTP} {W}/sftp/batch11 bkbench > /dev/null"],
    "bk-push, fsync'ed": [f"exec {BIN}/bk-push -q --expect-size {SIZE} {W}/sftp/hosts3f < {W}/sftp/in.bks > /dev/null"],
    "3 sftp put -f": [f"exec {SFTP} {W}/sftp/batchf{i} bkbench > /dev/null" for i in range(3)],
}
PAIRS = [("bk-push, 3 hosts", "3 sftp puts"), ("bk-push, 1-of-1", "1 sftp put"),
         ("bk-push, fsync'ed", "3 sftp put -f")]


def ticks(path, fields):
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return [int(rest[i]) / TCK for i in fields]


def prep():
    subprocess.run(f"rm -rf {W}/sftp/b? {W}/sftp/p? && mkdir -p {W}/sftp/b1 {W}/sftp/b2 {W}/sftp/b3 "
                   f"{W}/sftp/p1 {W}/sftp/p2 {W}/sftp/p3", shell=True, check=True)


def once(cmds, sshd, env):
    prep()
    time.sleep(0.3)
    s0, i0 = ticks(f"/proc/{sshd}/stat", [13, 14]), idle()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    procs = [subprocess.Popen(c, shell=True, env=env) for c in cmds]
    own = {}
    while any(p.poll() is None for p in procs):
        for p in procs:
            try:
                own[p.pid] = ticks(f"/proc/{p.pid}/stat", [11, 12])
            except (OSError, IndexError):
                pass
        time.sleep(0.003)
    wall = time.time() - t0
    if any(p.returncode for p in procs):
        sys.exit(f"row9-paired: {cmds} failed")
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    i1 = idle()
    time.sleep(0.2)  # the sshd reaps its children
    s1 = ticks(f"/proc/{sshd}/stat", [13, 14])
    client = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return (wall, sum(u for u, _ in own.values()), sum(s for _, s in own.values()),
            client, sum(s1) - sum(s0), i1 - i0)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with sshd() as server:
        env = dict(os.environ, BK_SSH=f"ssh -F {CFG}")
        got = {k: [] for k in COMMANDS}
        for _ in range(rounds):
            for k, cmds in COMMANDS.items():
                got[k].append(once(cmds, server.pid, env))
        print(f"{rounds} rounds; medians (wall also best), seconds")
        print(f"{'':18s} {'wall':>5s} {'best':>5s} {'user':>5s} {'sys':>5s} {'client':>6s} {'sshd':>5s} {'idle':>5s}")
        for k, v in got.items():
            med = [sorted(x[i] for x in v)[len(v) // 2] for i in range(6)]
            print(f"{k:18s} {med[0]:5.2f} {min(x[0] for x in v):5.2f} {med[1]:5.2f} {med[2]:5.2f} "
                  f"{med[3]:6.2f} {med[4]:5.2f} {med[5]:5.2f}")
        print("bk-push / reference, wall time of the same round:")
        for bk, ref in PAIRS:
            paired(bk, ref, [a[0] / b[0] for a, b in zip(got[bk], got[ref])])


def paired(bk, ref, ratios):
    """Prints how often bk was faster, the median ratio with its 95 %
    interval (order statistics: no assumption about the distribution), and
    the sign test's chance of so many wins were the two equally fast."""
    n, r = len(ratios), sorted(ratios)
    wins = sum(x < 1 for x in ratios)
    cdf = lambda k: sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    j = max([k for k in range(n // 2) if cdf(k) <= 0.025], default=-1)
    interval = f"{r[j]:.3f}-{r[n - 1 - j]:.3f}" if j >= 0 else "too few rounds"
    chance = 1 - cdf(wins - 1) if wins else 1.0
    print(f"  {bk} / {ref}: faster in {wins} of {n}, median {r[n // 2]:.3f}, "
          f"95 % interval {interval}, sign test p = {chance:.3g}")


if __name__ == "__main__":
    main()
