#!/bin/sh
# bench/join-checks.sh [BASE]: what bk-join's checks cost, as a ratio of
# this tree's join benchmarks to BASE's (default: the first commit before
# the cross-checks of every reachable share's records, 78ce7b6). Both test
# binaries are built with this tree's bench_test.go and run in turn, eight
# rounds, so that load on a shared machine falls on both alike; benchstat
# compares them. The cpu-ns/op figures (CPU time of all threads per join)
# vary far less than sec/op on a busy machine.
set -eu
base=${1:-78ce7b6}
out=${BENCH_OUT:-$(mktemp -d)}
root=$(git rev-parse --show-toplevel)
git -C "$root" worktree add -q --detach "$out/base" "$base"
trap 'git -C "$root" worktree remove --force "$out/base"' EXIT
cp "$root/internal/shard/bench_test.go" "$out/base/internal/shard/"
(cd "$out/base" && go test -c -o "$out/old.test" ./internal/shard/)
(cd "$root" && go test -c -o "$out/new.test" ./internal/shard/)
bench='JoinFiles|Join/k4n6-(stream|missing2)/bs=128K'
: > "$out/old.txt"
: > "$out/new.txt"
for _ in 1 2 3 4 5 6 7 8; do
	(cd "$root/internal/shard" && "$out/old.test" -test.run '^$' -test.bench "$bench" -test.benchtime 10x >> "$out/old.txt")
	(cd "$root/internal/shard" && "$out/new.test" -test.run '^$' -test.bench "$bench" -test.benchtime 10x >> "$out/new.txt")
done
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
PATH=$PATH:$(go env GOPATH)/bin benchstat "$out/old.txt" "$out/new.txt"
