#!/usr/bin/env python3
"""Row 9's 1-of-1 push in phases: start, data, end.

Run `BENCH_ROWS=9 bench/run.sh` once first: this reuses the share files,
streams, hosts file and sshd configuration it leaves in bench/_out/work.

    bench/row9-phases.py [ROUNDS]        # default 10

Each round runs bk-push of the 1-of-1 stream and one `sftp put` of its share,
in turn, through an ssh wrapper that notes when ssh starts. The host's file
tells the phases: its birth is when the upload opened it, its last write the
end of the data; so for each tool the medians of: when ssh started, when
the file was opened (start), how long the data took, how long from the last
write to the tool's exit (end), and the core-seconds both cores sat idle in
the start and the data phase (/proc/stat, 10 ms ticks).
"""
import os
import subprocess
import sys
import threading
import time

from row9lib import BIN, CFG, SIZE, W, idle, sshd

WRAP = f"{W}/ssh/ssh-noted"
NOTE = f"{W}/ssh/ssh-started"


def born_and_written(path):
    out = subprocess.run(["stat", "-c", "%.9W %.9Y", path], capture_output=True, text=True, check=True)
    return [float(x) for x in out.stdout.split()]


def once(kind, env):
    subprocess.run(f"rm -rf {W}/sftp/b1 {W}/sftp/p1 && mkdir -p {W}/sftp/b1 {W}/sftp/p1", shell=True, check=True)
    open(NOTE, "w").close()
    time.sleep(0.3)
    if kind == "bk-push":
        cmd = f"exec {BIN}/bk-push -q --expect-size {SIZE} {W}/sftp/hosts11 < {W}/sftp/in1.bks > /dev/null"
    else:
        cmd = f"exec sftp -S {WRAP} -q -F {CFG} -b {W}/sftp/batch11 bkbench > /dev/null"
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.time(), idle()))
            time.sleep(0.005)

    th = threading.Thread(target=sample)
    th.start()
    t0 = time.time()
    subprocess.run(cmd, shell=True, env=env, check=True)
    t1 = time.time()
    time.sleep(0.02)
    stop.set()
    th.join()
    names = [os.path.join(d, n) for d in (f"{W}/sftp/b1", f"{W}/sftp/p1") for n in os.listdir(d)
             if n == "share" or n.endswith(".share0")]
    born, written = born_and_written(names[0])

    def idle_at(t):
        return max((v for ts, v in samples if ts <= t), default=samples[0][1])

    with open(NOTE) as f:
        ssh = float(f.read().split()[0])
    return (ssh - t0, born - t0, written - born, t1 - written, t1 - t0,
            idle_at(born) - idle_at(t0), idle_at(written) - idle_at(born))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with open(WRAP, "w") as f:
        f.write(f'#!/bin/bash\necho "$EPOCHREALTIME" >> {NOTE}\nexec ssh "$@"\n')
    os.chmod(WRAP, 0o755)
    with sshd():
        env = dict(os.environ, BK_SSH=f"{WRAP} -F {CFG}")
        got = {"bk-push": [], "sftp put": []}
        for _ in range(rounds):
            for k in got:
                got[k].append(once(k, env))
        print(f"{rounds} rounds of the 1-of-1 push; medians, seconds")
        print(f"{'':9s} {'ssh at':>7s} {'start':>6s} {'data':>6s} {'end':>6s} {'total':>6s} "
              f"{'idle start':>10s} {'idle data':>9s}")
        for k, v in got.items():
            m = [sorted(x[i] for x in v)[len(v) // 2] for i in range(7)]
            print(f"{k:9s} {m[0]:7.4f} {m[1]:6.3f} {m[2]:6.3f} {m[3]:6.3f} {m[4]:6.3f} {m[5]:10.2f} {m[6]:9.2f}")


if __name__ == "__main__":
    main()
