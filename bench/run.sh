#!/usr/bin/env bash
# bench/run.sh: the end-to-end benchmark of the bk tools against reference
# tools (tar|zstd|age, restic, cat, zfec) on the same generated data, in the
# same run. See bench/README.md for how to read the results.
#
#   make bench                        build, then run everything at full size
#   bench/run.sh                      the same, with the tools already in bin/
#                                     (refused when the source is newer)
#   BENCH_SCALE=0.1 bench/run.sh      a quick run on data sets 10x smaller
#   bench/run.sh --quick              the same as BENCH_SCALE=0.1
#   bench/run.sh --rows "2 3"         only some rows (1 pack, 2 split, 3 join,
#                                     4 end-to-end backup, 5 restore,
#                                     6 incremental, 7 check and repair,
#                                     8 long stream, 9 SFTP throughput,
#                                     10 S3 upload, 11 seekable restore
#                                     and find, 12 large file)
#   bench/run.sh --go                 also run the Go micro-benchmarks
#
# Environment: BENCH_SCALE (1), BENCH_REPS (5 runs of each command, taken
# alternately with its reference; the best wall time counts), BENCH_SEED (1),
# BENCH_ROWS ("1 2 3 4 5 6 7 8 9 10 11 12"), BENCH_GO (0), BENCH_BIN (bin: where the
# bk tools are), BENCH_STREAM_GIB (64: the size of row 8's stream).
#
# Everything is written below bench/_out/: data/ (the data sets, made again
# only when the seed or scale changes), work/ (outputs, shares, hosts),
# logs/ (stderr of each command), results.txt (this run's report).
# Exit status: 0 when every command ran, even if a target was missed (this
# is a report); 1 when a command failed; 2 on a usage error.

# The whole script is one block, read before it runs, so that editing this
# file during a run cannot change the run.
{
set -euo pipefail
shopt -s extglob
export LC_ALL=C

usage() { sed -n '2,/^$/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

SCALE=${BENCH_SCALE:-1}
REPS=${BENCH_REPS:-5}
SEED=${BENCH_SEED:-1}
ROWS=${BENCH_ROWS:-1 2 3 4 5 6 7 8 9 10 11 12}
GOBENCH=${BENCH_GO:-0}
while (($#)); do
	case $1 in
	--go) GOBENCH=1 ;;
	--quick) SCALE=0.1 ;;
	--rows) [[ $# -ge 2 ]] || usage; ROWS=$2; shift ;;
	-h | --help) usage ;;
	*) echo "bench: error: unknown argument $1" >&2; usage ;;
	esac
	shift
done

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/_out
DATA=$OUT/data # full size; other scales have their own, so both can stay
[[ $SCALE == 1 ]] || DATA=$OUT/data-$SCALE
WORK=$OUT/work
LOGS=$OUT/logs
TDIR=$WORK/time
RESULTS=$OUT/results.txt
PY=/usr/bin/python3 # Debian's python3-zfec lives with the system python
mkdir -p "$DATA" "$WORK" "$LOGS" "$OUT/bin"
# The bk tools are copied once, so that a "make build" by someone else
# during the run cannot change them halfway.
# bin/ as last built is what gets measured: refuse it when the source is
# newer, since figures of yesterday's code under today's name mislead.
# Naming BENCH_BIN measures whatever is there.
if [[ -z ${BENCH_BIN:-} ]]; then
	oldest=$(ls -tr "$ROOT"/bin/bk-* 2>/dev/null | head -n 1 || true)
	if [[ -n $oldest ]]; then
		newer=$(find cmd internal go.mod go.sum -newer "$oldest" \( -name '*.go' -o -name 'go.*' \) ! -name '*_test.go' -print -quit)
		if [[ -n $newer ]]; then
			echo "bench: error: ${oldest#"$ROOT"/} is older than $newer: run make build first (make bench does), or set BENCH_BIN=bin to measure it as it is" >&2
			exit 1
		fi
	fi
fi
rm -rf "$OUT/tools" && mkdir -p "$OUT/tools"
cp "${BENCH_BIN:-$ROOT/bin}"/bk-* "$OUT/tools/" 2>/dev/null || true
export PATH=$OUT/tools:$OUT/bin:$PATH

note() { echo "bench: $*" >&2; }
NOTES=()    # lines for the report: skipped rows, failures, checks
FAILED=0    # set when a command failed: exit 1
ROWLINES=() # the table
CMDLINES=() # the exact commands

# --- tools ---------------------------------------------------------------

# aptget installs Debian packages for missing reference tools (never in CI:
# CI does not run the bench).
aptget() {
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		note "installing $* with apt-get (missing reference tools)"
		NOTES+=("installed with apt-get: $*")
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; } >"$LOGS/apt.log" 2>&1 ||
			note "apt-get install $* failed: see $LOGS/apt.log"
	else
		note "missing $*: install them (apt-get install $*) for the rows that need them"
	fi
}
missing=()
for t in age:age age-keygen:age zstd:zstd tar:tar restic:restic sshd:openssh-server ssh:openssh-client rclone:rclone; do
	command -v "${t%%:*}" >/dev/null || [[ -x /usr/sbin/${t%%:*} ]] || missing+=("${t#*:}")
done
[[ -x /usr/bin/time ]] || missing+=(time)
$PY -c 'import zfec' 2>/dev/null || missing+=(python3-zfec)
((${#missing[@]} == 0)) || aptget $(printf '%s\n' "${missing[@]}" | sort -u)
[[ -x /usr/bin/time ]] || { echo "bench: error: GNU time (/usr/bin/time) is needed" >&2; exit 1; }
have() { command -v "$1" >/dev/null || [[ -x /usr/sbin/$1 ]]; }

# Debian's python3-zfec has the codec but no zfec command, and imports two
# helpers from pyutil, which Debian no longer ships: a shim provides them.
mkdir -p "$OUT/pyshim/pyutil"
: >"$OUT/pyshim/pyutil/__init__.py"
cat >"$OUT/pyshim/pyutil/mathutil.py" <<'EOF'
def pad_size(n, k):
    """How many bytes make n a multiple of k."""
    return (k - n % k) % k

def log_ceil(n, b):
    """The smallest e such that b**e >= n."""
    e, p = 0, 1
    while p < n:
        p, e = p * b, e + 1
    return e
EOF
cat >"$OUT/pyshim/pyutil/fileutil.py" <<'EOF'
import os

def remove_if_possible(f):
    try:
        os.remove(f)
    except OSError:
        pass
EOF
for cmd in zfec zunfec; do
	cat >"$OUT/bin/$cmd" <<EOF
#!/bin/sh
# $cmd from Debian's python3-zfec (written by bench/run.sh)
PYTHONPATH="$OUT/pyshim" exec $PY -c 'import sys; from zfec.cmdline_$cmd import main; sys.exit(main())' "\$@"
EOF
	chmod +x "$OUT/bin/$cmd"
done
zfec_ok() { zfec -V >/dev/null 2>&1; }

# ready says whether bk tool $1 is built and no longer a stub.
ready() {
	[[ -x $OUT/tools/$1 ]] || return 1
	local msg
	msg=$(timeout 20 "$OUT/tools/$1" </dev/null 2>&1 >/dev/null) || true
	[[ $msg != *"not built yet"* ]]
}
# need TOOL...: true when all are there; else a note that row $ROW is skipped.
need() {
	local t why=()
	for t; do
		case $t in
		bk-*)
			if [[ ! -x $OUT/tools/$t ]]; then
				why+=("$t is not in bin/ (make build)")
			elif ! ready "$t"; then
				why+=("$t is not ready (it prints \"not built yet\")")
			fi
			;;
		zfec) zfec_ok || why+=("zfec (python3-zfec) is missing") ;;
		*) have "$t" || why+=("$t is not installed") ;;
		esac
	done
	((${#why[@]} == 0)) && return 0
	local msg="skipped what needs $*: $(printf '%s; ' "${why[@]}")"
	NOTES+=("row $ROW ($ROWNAME): ${msg%; }")
	note "row $ROW: ${msg%; }"
	return 1
}

# --- measuring -------------------------------------------------------------

# T NAME CMD... runs one stage of a pipeline under GNU time, which records
# its wall time and peak RSS in $TDIR/NAME.
T() {
	local name=$1
	shift
	/usr/bin/time -f '%e %M %U %S' -o "$TDIR/$name" "$@"
}

declare -A CMD PREP BEST WALLS RSS CPU STAGES SIZE ERR

# def LABEL PREP CMD: a measured command, and what to do (untimed) before
# each run of it. CMD's stages are wrapped in T NAME.
def() { PREP[$1]=$2; CMD[$1]=$3; unset "BEST[$1]" "WALLS[$1]" "ERR[$1]"; }

# show turns a command into the text the report prints.
show() {
	local s=$1
	s=${s//$OUT/bench/_out}
	s=${s//$ROOT\//}
	printf '%s' "$s" | sed -E 's/(^| )T [a-z0-9-]+ /\1/g'
}

# once LABEL: one run; updates BEST (min wall), WALLS (all of them), RSS
# (max per stage) and CPU (min user+sys seconds per stage).
once() {
	local l=$1 t0 t1 f name
	rm -rf "$TDIR" && mkdir -p "$TDIR"
	if [[ -n ${PREP[$l]} ]] && ! (eval "${PREP[$l]}") >>"$LOGS/$l.log" 2>&1; then
		ERR[$l]="preparation failed: $(show "${PREP[$l]}")"
		return 1
	fi
	t0=$EPOCHREALTIME
	if ! (set -o pipefail && eval "${CMD[$l]}") 2>>"$LOGS/$l.log"; then
		ERR[$l]="failed: $(show "${CMD[$l]}"): $(tail -n 3 "$LOGS/$l.log" | tr '\n' ' ')"
		return 1
	fi
	t1=$EPOCHREALTIME
	local wall
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	if [[ -z ${BEST[$l]:-} ]] || awk -v a="$wall" -v b="${BEST[$l]}" 'BEGIN { exit !(a < b) }'; then
		BEST[$l]=$wall
	fi
	WALLS[$l]+="$wall "
	STAGES[$l]=
	for f in "$TDIR"/*; do
		[[ -e $f ]] || continue
		name=${f##*/}
		STAGES[$l]+="$name "
		local kib cpu
		read -r kib cpu < <(tail -n 1 "$f" | awk '{ print $2, $3 + $4 }')
		((kib > ${RSS[$l:$name]:-0})) && RSS[$l:$name]=$kib
		if [[ -z ${CPU[$l:$name]:-} ]] || awk -v a="$cpu" -v b="${CPU[$l:$name]}" 'BEGIN { exit !(a < b) }'; then
			CPU[$l:$name]=$cpu
		fi
	done
	note "  $l: ${wall}s"
}

# measure LABEL...: REPS rounds, each running every label once, in turn, so
# a burst of load from elsewhere hits them alike. A label that fails is
# dropped from later rounds and reported.
measure() {
	local rep l
	(($#)) || return 0
	for l; do
		CMDLINES+=("$l: $(show "${CMD[$l]}")")
		: >"$LOGS/$l.log"
	done
	for ((rep = 1; rep <= REPS; rep++)); do
		note "row $ROW ($ROWNAME), round $rep of $REPS"
		for l; do
			[[ -n ${ERR[$l]:-} ]] && continue
			once "$l" || { FAILED=1; note "  $l ${ERR[$l]}"; NOTES+=("row $ROW: $l ${ERR[$l]}"); }
		done
	done
}

ok() { [[ -n ${BEST[$1]:-} && -z ${ERR[$1]:-} ]]; }

# peak RSS (KiB) of the named stages of a label: the largest of them.
rss() {
	local l=$1 s m=0
	shift
	for s; do ((${RSS[$l:$s]:-0} > m)) && m=${RSS[$l:$s]}; done
	echo "$m"
}

# cpu LABEL: CPU seconds (user+sys) of all its stages.
cpu() {
	local l=$1 s t=0
	for s in ${STAGES[$l]}; do
		t=$(awk -v a="$t" -v b="${CPU[$l:$s]}" 'BEGIN { print a + b }')
	done
	echo "$t"
}

# cpuline SET WHAT BKLABEL REFLABEL: CPU time of all stages, bk / reference,
# steadier than wall time on a busy machine; informational.
# With OP LIMIT (cpuline SET WHAT BK REF OP LIMIT) it is a target.
cpuline() {
	ok "$3" && ok "$4" || return 0
	local a b r
	a=$(cpu "$3") b=$(cpu "$4")
	r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	if [[ -n ${5:-} ]]; then
		line "$1" "$2" "$(secs "$a")" "$(secs "$b")" "${r}x" "$5 ${6}x" "$(verdict "$r" "$5" "$6")"
	else
		line "$1" "$2" "$(secs "$a")" "$(secs "$b")" "${r}x" "-" "info"
	fi
}

# stageline SET LABEL STAGE: one stage's peak RSS and CPU time.
stageline() {
	ok "$2" || return 0
	line "$1" "$2: $3 peak RSS, CPU s (own process)" "$(mib "$(rss "$2" "$3")")" "$(secs "${CPU[$2:$3]}") cpu" "-" "-" "info"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
secs() { awk -v s="$1" 'BEGIN { printf "%.2f s", s }'; }
human() { awk -v b="$1" 'BEGIN { if (b >= 2^30) printf "%.2f GiB", b / 2^30; else printf "%.1f MiB", b / 2^20 }'; }

# line SET WHAT BK REF RATIO TARGET RESULT
line() {
	ROWLINES+=("$(printf '%-2s %-6s %-50s %-11s %-11s %-7s %-9s %s' "$ROW" "$@")")
	note "$(printf '%-2s %-6s %-50s %-11s %-11s %-7s %-9s %s' "$ROW" "$@")"
}

# verdict RATIO OP LIMIT: PASS or MISS.
verdict() {
	awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN {
		ok = (op == "<=") ? r <= t : (op == "<") ? r < t : r >= t
		print ok ? "PASS" : "MISS" }'
}

# compare SET WHAT BKLABEL REFLABEL OP LIMIT [speed]
# Time ratio bk/ref (or, with "speed", ref/bk: how many times faster bk is),
# with the target OP LIMIT; "-" for an informational row.
compare() {
	local set=$1 what=$2 bk=$3 ref=$4 op=$5 limit=$6 kind=${7:-time} r
	if [[ -n ${ERR[$bk]:-} || -n ${ERR[$ref]:-} ]]; then
		line "$set" "$what" "${BEST[$bk]:+$(secs "${BEST[$bk]}")}" "${BEST[$ref]:+$(secs "${BEST[$ref]}")}" "-" "$op ${limit}x" "FAILED"
		return
	fi
	ok "$bk" && ok "$ref" || return 0
	if [[ $kind == speed ]]; then
		r=$(awk -v a="${BEST[$ref]}" -v b="${BEST[$bk]}" 'BEGIN { printf "%.2f", a / b }')
	else
		r=$(awk -v a="${BEST[$bk]}" -v b="${BEST[$ref]}" 'BEGIN { printf "%.2f", a / b }')
	fi
	local v=info
	[[ $op != - ]] && v=$(verdict "$r" "$op" "$limit")
	line "$set" "$what" "$(secs "${BEST[$bk]}")" "$(secs "${BEST[$ref]}")" "${r}x" "$([[ $op == - ]] && echo - || echo "$op ${limit}x")" "$v"
}

# median LABEL: the median of its wall times.
median() {
	tr ' ' '\n' <<<"${WALLS[$1]}" | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# medianline SET WHAT BK REF: the ratio of the median wall times, for
# information: where one side varies more than the other (three processes
# against one), the best of a few runs favours it.
medianline() {
	ok "$3" && ok "$4" || return 0
	local a b
	a=$(median "$3") b=$(median "$4")
	line "$1" "$2" "$(secs "$a")" "$(secs "$b")" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }')" "-" "info"
}

# rssline SET WHAT LABEL STAGE [REFLABEL REFSTAGE...]: peak RSS of a bk
# stage against 64 MiB, with a reference's for comparison.
rssline() {
	local set=$1 what=$2 l=$3 s=$4 ref=${5:-} k r=""
	shift 4
	ok "$l" || return 0
	k=$(rss "$l" "$s")
	if [[ -n $ref ]] && ok "$ref"; then
		shift
		r=$(mib "$(rss "$ref" "$@")")
	fi
	line "$set" "$what" "$(mib "$k")" "$r" "-" "< 64 MiB" "$(verdict "$k" "<" 65536)"
}

# --- data ----------------------------------------------------------------

note "building bench/gendata"
go build -o "$OUT/bin/gendata" ./bench/gendata
declare -A DSET
for set in mixed small random; do
	dest=$DATA/$set
	[[ $set == random ]] && dest=$DATA/random.bin
	note "data set $set (scale $SCALE, seed $SEED): making it unless it is already there"
	DSET[$set]=$(gendata -set "$set" -seed "$SEED" -scale "$SCALE" -out "$dest")
done
# Read everything once so every run starts with the data in the page cache.
tar -cf - -C "$DATA" mixed small random.bin | cat >/dev/null

[[ -s $WORK/key.txt ]] || age-keygen -o "$WORK/key.txt" 2>/dev/null
RECIP=$(age-keygen -y "$WORK/key.txt")
KEY=$WORK/key.txt
export RESTIC_PASSWORD=bench

# --- loopback SFTP ---------------------------------------------------------

SSHD_PID=
SSHDIR=$WORK/ssh
stop_sshd() {
	[[ -n $SSHD_PID ]] || return 0
	kill -TERM -- "-$SSHD_PID" 2>/dev/null || true
	wait "$SSHD_PID" 2>/dev/null || true
	SSHD_PID=
}
# stop_gw stops row 10's versitygw (its own process group, like sshd).
GW_PID=
stop_gw() {
	[[ -n $GW_PID ]] || return 0
	kill -TERM -- "-$GW_PID" 2>/dev/null || true
	wait "$GW_PID" 2>/dev/null || true
	GW_PID=
}
# A row that dies midway, or a run that is interrupted, leaves no server
# behind: bash runs the EXIT trap on errors, and on a signal only when the
# signal has a trap of its own.
trap 'stop_sshd; stop_gw' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# sshd_cpu: CPU seconds of the sshd's finished connections (its reaped
# children), from /proc.
sshd_cpu() {
	if [[ -n $SSHD_PID && -r /proc/$SSHD_PID/stat ]]; then
		awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($14 + $15) / hz }' "/proc/$SSHD_PID/stat"
	else
		echo 0
	fi
}

# start_sshd runs a throwaway OpenSSH sshd on a free port of 127.0.0.1, in
# its own process group, with its own host and user keys, and sets BK_SSH
# to an ssh that reaches it as host "bkbench".
start_sshd() {
	local sshd port cfg
	sshd=$(command -v sshd || echo /usr/sbin/sshd)
	rm -rf "$SSHDIR" && mkdir -p "$SSHDIR"
	ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$SSHDIR/host_ed25519"
	ssh-keygen -q -t ed25519 -N '' -C bench-user -f "$SSHDIR/id_ed25519"
	cp "$SSHDIR/id_ed25519.pub" "$SSHDIR/authorized_keys"
	echo "bkbench $(cat "$SSHDIR/host_ed25519.pub")" >"$SSHDIR/known_hosts"
	[[ $(id -u) != 0 ]] || mkdir -p /run/sshd
	port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cfg=$SSHDIR/sshd_config
	cat >"$cfg" <<-EOF
		ListenAddress 127.0.0.1:$port
		HostKey $SSHDIR/host_ed25519
		AuthorizedKeysFile $SSHDIR/authorized_keys
		PidFile none
		StrictModes no
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin prohibit-password
		UsePAM no
		AllowUsers $(id -un)
		MaxStartups 100
		MaxSessions 100
		Subsystem sftp internal-sftp
	EOF
	# Newer sshd refuses, for a while, clients that failed; older ones
	# don't know the option.
	"$sshd" -t -f "$cfg" -o PerSourcePenalties=no 2>/dev/null && echo "PerSourcePenalties no" >>"$cfg"
	cat >"$SSHDIR/ssh_config" <<-EOF
		Host bkbench
		  HostName 127.0.0.1
		  Port $port
		  User $(id -un)
		  HostKeyAlias bkbench
		  UserKnownHostsFile $SSHDIR/known_hosts
		  GlobalKnownHostsFile /dev/null
		  StrictHostKeyChecking yes
		  IdentityFile $SSHDIR/id_ed25519
		  IdentitiesOnly yes
		  IdentityAgent none
		  BatchMode yes
		  ControlMaster no
		  ControlPath none
		  LogLevel ERROR
	EOF
	setsid "$sshd" -D -e -f "$cfg" 2>"$LOGS/sshd.log" &
	SSHD_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q 'Server listening' "$LOGS/sshd.log" && break
		sleep 0.1
	done
	export BK_SSH="ssh -F $SSHDIR/ssh_config"
	if ! $BK_SSH bkbench true 2>>"$LOGS/sshd.log"; then
		note "the loopback sshd does not answer: see $LOGS/sshd.log"
		return 1
	fi
}

# --- rows ------------------------------------------------------------------

row1() {
	ROW=1 ROWNAME="bk-pack"
	local set labels
	for set in mixed small; do
		def "ref-$set" "" "cd $DATA && T tar tar -cf - $set | T zstd zstd -q -3 -T0 | T age age -r $RECIP > $WORK/ref-$set.age"
		def "pack-$set" "" "cd $DATA && T bk-pack bk-pack -r $RECIP $set > $WORK/pack-$set.bk"
		def "restic-$set" "rm -rf $WORK/restic-repo $WORK/restic-cache && restic init -q --repo $WORK/restic-repo" \
			"cd $DATA && T restic restic -q --repo $WORK/restic-repo --cache-dir $WORK/restic-cache backup $set"
		labels=()
		need tar zstd age && labels+=("ref-$set")
		need bk-pack && labels+=("pack-$set")
		need restic && labels+=("restic-$set")
		measure "${labels[@]}"
		ok "ref-$set" && SIZE[ref-$set]=$(stat -c %s "$WORK/ref-$set.age")
		ok "pack-$set" && SIZE[pack-$set]=$(stat -c %s "$WORK/pack-$set.bk")
		compare "$set" "bk-pack time / tar|zstd -3 -T0|age" "pack-$set" "ref-$set" "<=" 1.0
		if ok "pack-$set" && ok "ref-$set"; then
			local r
			r=$(awk -v a="${SIZE[pack-$set]}" -v b="${SIZE[ref-$set]}" 'BEGIN { printf "%.3f", a / b }')
			line "$set" "bk-pack output size / tar|zstd|age" "$(human "${SIZE[pack-$set]}")" "$(human "${SIZE[ref-$set]}")" "${r}x" "<= 1.05x" "$(verdict "$r" "<=" 1.05)"
		fi
		rssline "$set" "bk-pack peak RSS (ref: largest of tar,zstd,age)" "pack-$set" bk-pack "ref-$set" tar zstd age
		if [[ $set == small ]]; then
			cpuline "$set" "bk-pack CPU time / tar+zstd+age's" "pack-$set" "ref-$set" "<=" 1.0
		else
			cpuline "$set" "bk-pack CPU time / tar+zstd+age's" "pack-$set" "ref-$set"
		fi
		local want=1.5
		[[ $set == small ]] && want=3
		compare "$set" "bk-pack speed vs restic backup (x faster)" "pack-$set" "restic-$set" ">=" "$want" speed
		refline "$set" "tar|zstd -3 -T0|age (reference alone)" "ref-$set" tar zstd age
		refline "$set" "restic backup, first, fresh repo (reference alone)" "restic-$set" restic
	done
}

# refline SET WHAT LABEL STAGE...: a reference's time and peak RSS, so the
# row shows something even while the bk tool is not ready.
refline() {
	local set=$1 what=$2 l=$3
	shift 3
	ok "$l" || return 0
	line "$set" "$what" "" "$(secs "${BEST[$l]}")" "-" "-" "info, RSS $(mib "$(rss "$l" "$@")")"
}

# defsplit defines the commands that make share files, for rows 2 and 3.
defsplit() {
	local in=$DATA/random.bin
	def split-o "rm -rf $WORK/shares && mkdir -p $WORK/shares" "T bk-split bk-split -k 4 -n 6 -o $WORK/shares < $in"
	def zfec "rm -rf $WORK/zfec && mkdir -p $WORK/zfec" "T zfec zfec -q -k 4 -m 6 -d $WORK/zfec -p random $in"
}

row2() {
	ROW=2 ROWNAME="bk-split"
	local in=$DATA/random.bin labels=(cat)
	def cat "" "T cat cat < $in > /dev/null"
	def split "" "T bk-split bk-split -k 4 -n 6 < $in > /dev/null"
	# The same between pipes, where bk-split sits in a backup.
	def cat-pipe "" "T cat1 cat $in | T cat cat | T cat3 cat > /dev/null"
	def split-pipe "" "T cat1 cat $in | T bk-split bk-split -k 4 -n 6 | T cat3 cat > /dev/null"
	defsplit
	labels+=(cat-pipe)
	need bk-split && labels+=(split split-pipe split-o)
	need zfec && labels+=(zfec)
	measure "${labels[@]}"
	compare random "bk-split speed / cat's (stdin to /dev/null)" split cat ">=" 0.5 speed
	compare random "bk-split speed / cat's (cat|X|cat, in a pipe)" split-pipe cat-pipe ">=" 0.5 speed
	cpuline random "bk-split CPU time (stdin to /dev/null) / cat's" split cat
	compare random "bk-split -o DIR speed / zfec -k 4 -m 6" split-o zfec ">=" 8 speed
	rssline random "bk-split peak RSS (to stdout)" split bk-split
	rssline random "bk-split -o DIR peak RSS (ref: zfec)" split-o bk-split zfec zfec
	cpuline random "bk-split -o DIR CPU time / zfec's" split-o zfec
	refline random "cat (reference alone)" cat cat
	refline random "zfec -k 4 -m 6 (reference alone)" zfec zfec
}

row3() {
	ROW=3 ROWNAME="bk-join"
	local in=$DATA/random.bin labels=()
	# Shares made by row 2, or now. Two of the six are taken away: the
	# first two, which hold data, so the join must rebuild them.
	[[ -n ${CMD[split-o]:-} ]] || defsplit
	if need bk-split bk-join; then
		ok split-o || measure split-o
	fi
	if need zfec; then
		ok zfec || measure zfec
		if [[ $(ls "$WORK"/zfec/*.fec 2>/dev/null | wc -l) == 6 ]]; then
			def zunfec "rm -f $WORK/joined.bin" "T zunfec zunfec -f -o $WORK/joined.bin $(ls "$WORK"/zfec/*.fec | sort | tail -n 4 | tr '\n' ' ')"
			labels+=(zunfec)
		fi
	fi
	if ok split-o; then
		rm -rf "$WORK/shares4" && mkdir -p "$WORK/shares4"
		local shares=("$WORK"/shares/*)
		if ((${#shares[@]} != 6)); then
			FAILED=1
			NOTES+=("row 3: bk-split -k 4 -n 6 -o DIR made ${#shares[@]} files, not 6: ${shares[*]##*/}")
		else
			ln "${shares[@]:2}" "$WORK/shares4/"
			def join "rm -f $WORK/joined.bin" "T bk-join bk-join $WORK/shares4/* > $WORK/joined.bin"
			def join-null "" "T bk-join bk-join $WORK/shares4/* > /dev/null"
			if bk-join "$WORK"/shares4/* 2>>"$LOGS/join.log" | cmp -s - "$in"; then
				NOTES+=("row 3: checked: bk-join of 4 of 6 shares gives back the input byte for byte")
				labels+=(join join-null)
			else
				FAILED=1
				NOTES+=("row 3: bk-join of 4 of 6 shares did not give back the input (see bench/_out/logs/join.log)")
			fi
		fi
	fi
	measure "${labels[@]}"
	compare random "bk-join (2 of 6 gone) time / bk-split -o's" join split-o "<=" 1.5
	compare random "the same, both to /dev/null (split from stdin)" join-null split "<=" 1.5
	compare random "bk-join speed / zunfec (2 of 6 gone)" join zunfec ">=" 5 speed
	rssline random "bk-join peak RSS (ref: zunfec)" join bk-join zunfec zunfec
	cpuline random "bk-join CPU time / bk-split -o's" join split-o
	cpuline random "bk-join CPU time / zunfec's" join zunfec
	refline random "zunfec, 2 of 6 gone (reference alone)" zunfec zunfec
}

hostsfiles() {
	printf '%s\n' "$WORK/hosts/l1" "$WORK/hosts/l2" "$WORK/hosts/l3" >"$WORK/hosts-local.txt"
	printf 'sftp://bkbench%s\n' "$WORK/hosts/s1" "$WORK/hosts/s2" "$WORK/hosts/s3" >"$WORK/hosts-sftp.txt"
}
E2E_PREP="rm -rf $WORK/hosts/l? && mkdir -p $WORK/hosts/l1 $WORK/hosts/l2 $WORK/hosts/l3"
E2E_LOCAL="cd $DATA && T bk-pack bk-pack -r $RECIP mixed | T bk-split bk-split -k 2 -n 3 | T bk-push bk-push $WORK/hosts-local.txt > $WORK/manifest-local.json"

# sftp_ready: can bk-push store a tiny backup on the loopback SFTP hosts?
# When it says it can't yet ("not ready", "not built yet"), the SFTP row is
# skipped with a note; any other failure is measured, and reported.
sftp_ready() {
	local msg
	mkdir -p "$WORK/hosts/s1" "$WORK/hosts/s2" "$WORK/hosts/s3"
	msg=$(printf 'probe' | bk-split -k 2 -n 3 2>&1 | bk-push "$WORK/hosts-sftp.txt" 2>&1 >/dev/null) && return 0
	[[ $msg != *"not ready"* && $msg != *"not built yet"* ]] && return 0
	NOTES+=("row 4: the SFTP row was skipped: bk-push cannot reach SFTP hosts yet: $(echo "$msg" | grep -m1 'not ready\|not built')")
	return 1
}

# perGiB SET WHAT LABEL STAGE BYTES: a stage's CPU seconds per GiB of BYTES.
perGiB() {
	ok "$3" && [[ -n ${CPU[$3:$4]:-} && ${5:-0} -gt 0 ]] || return 0
	line "$1" "$2" "$(awk -v c="${CPU[$3:$4]}" -v b="$5" 'BEGIN { printf "%.2f s/GiB", c / (b / 2^30) }')" "" "-" "-" "info"
}

row4() {
	ROW=4 ROWNAME="end-to-end backup"
	need bk-pack || return 0
	local labels=(pack-null)
	hostsfiles
	# The same three folders in tmpfs: what the pipeline costs, without the
	# disk's time to write 1.5 GiB of shares (which bk-pack > /dev/null
	# does not write).
	local shm=/dev/shm
	[[ -d $shm && -w $shm ]] || shm=$WORK
	shm=$shm/bk-bench-$$
	printf '%s\n' "$shm/t1" "$shm/t2" "$shm/t3" >"$WORK/hosts-shm.txt"
	def pack-null "" "cd $DATA && T bk-pack bk-pack -r $RECIP mixed > /dev/null"
	def e2e-local "$E2E_PREP" "$E2E_LOCAL"
	def e2e-shm "rm -rf $shm && mkdir -p $shm/t1 $shm/t2 $shm/t3" \
		"cd $DATA && T bk-pack bk-pack -r $RECIP mixed | T bk-split bk-split -k 2 -n 3 | T bk-push bk-push $WORK/hosts-shm.txt > $WORK/manifest-shm.json"
	def e2e-sftp "rm -rf $WORK/hosts/s? && mkdir -p $WORK/hosts/s1 $WORK/hosts/s2 $WORK/hosts/s3" \
		"cd $DATA && T bk-pack bk-pack -r $RECIP mixed | T bk-split bk-split -k 2 -n 3 | T bk-push bk-push $WORK/hosts-sftp.txt > $WORK/manifest-sftp.json"
	if need bk-split bk-push; then
		labels+=(e2e-shm e2e-local)
		CMDLINES+=("(e2e-shm: the three folders in ${shm%/*}, tmpfs where there is one)")
		if need sshd ssh && start_sshd && sftp_ready; then
			CMDLINES+=("(sftp: a throwaway sshd on 127.0.0.1; BK_SSH=\"ssh -F bench/_out/work/ssh/ssh_config\")")
			labels+=(e2e-sftp)
		elif [[ -z $SSHD_PID ]]; then
			NOTES+=("row 4: the SFTP row was skipped: no loopback sshd (see bench/_out/logs/sshd.log)")
		fi
	fi
	local before
	before=$(sshd_cpu)
	measure "${labels[@]}"
	local sshd_secs
	sshd_secs=$(awk -v a="$before" -v b="$(sshd_cpu)" -v n="$REPS" 'BEGIN { printf "%.2f", (b - a) / n }')
	stop_sshd
	rm -rf "$shm"
	compare mixed "pack|split -k2 -n3|push 3 tmpfs folders / pack>null" e2e-shm pack-null "<=" 1.50
	cpuline mixed "the same: CPU time of the 3 stages / pack>null's" e2e-shm pack-null
	compare mixed "pack|split -k2 -n3|push 3 disk folders / pack>null" e2e-local pack-null - -
	compare mixed "pack|split -k2 -n3|push 3 sftp / pack>null" e2e-sftp pack-null "<=" 1.50
	refline mixed "bk-pack > /dev/null (reference alone)" pack-null bk-pack
	local l s
	stageline mixed pack-null bk-pack
	for l in e2e-shm e2e-local e2e-sftp; do
		for s in bk-pack bk-split bk-push; do
			stageline mixed "$l" "$s"
		done
	done
	# CPU per GiB: bk-pack's of the files it reads, split's and push's of
	# the archive stream (the manifest's stream_size).
	local input archive
	input=$(du -sb "$DATA/mixed" | cut -f1)
	archive=$(grep -o '"stream_size": [0-9]*' "$WORK/manifest-shm.json" 2>/dev/null | grep -o '[0-9]*$' || echo 0)
	perGiB mixed "e2e-shm: bk-pack CPU per GiB of files" e2e-shm bk-pack "$input"
	perGiB mixed "e2e-shm: bk-split CPU per GiB of archive" e2e-shm bk-split "$archive"
	perGiB mixed "e2e-shm: bk-push CPU per GiB of archive" e2e-shm bk-push "$archive"
	perGiB mixed "pack-null: bk-pack CPU per GiB of files" pack-null bk-pack "$input"
	# The server's side shares the same two cores: it counts too.
	ok e2e-sftp && line mixed "e2e-sftp: the loopback sshd's CPU s (a round)" "" "$sshd_secs s cpu" "-" "-" "info"
}

row7() {
	ROW=7 ROWNAME="check and repair"
	need bk-split bk-push bk-join bk-check bk-repair || return 0
	local in=$DATA/random.bin up=$WORK/upkeep
	# One backup of the 1 GiB random file, k=2 n=3, on three folders: 1.5
	# GiB of shares, made once (untimed).
	rm -rf "$up" && mkdir -p "$up/h1" "$up/h2" "$up/h3"
	printf '%s\n' "$up/h1" "$up/h2" "$up/h3" >"$up/hosts.txt"
	if ! bk-split -k 2 -n 3 <"$in" 2>>"$LOGS/upkeep.log" | bk-push -q --name bench "$up/hosts.txt" >"$up/manifest.json" 2>>"$LOGS/upkeep.log"; then
		FAILED=1
		NOTES+=("row 7: storing the backup failed (see bench/_out/logs/upkeep.log)")
		return 0
	fi
	cat "$up"/h?/*.share* >/dev/null # into the page cache, as the reference finds them
	def cat-shares "" "T cat cat $up/h1/bench-* $up/h2/bench-* $up/h3/bench-* > /dev/null"
	def check "" "T bk-check bk-check -q $up/hosts.txt > /dev/null"
	# Each repair starts from the same loss: share 1 gone, no revision.
	local lose="rm -f $up/h2/*.share1 $up/h?/*.r[0-9]*.manifest.json"
	def repair-quick "$lose" "T bk-repair bk-repair -q --quick $up/hosts.txt > /dev/null"
	def repair-full "$lose" "T bk-repair bk-repair -q $up/hosts.txt > /dev/null"
	# The reference: a restore's read of the same backup, all shares there
	# (each repair puts share 1 back).
	def join-backup "" "T bk-join bk-join -q $up/hosts.txt > /dev/null"
	# bk-check is an I/O job: also from a cold page cache, when this run
	# may drop it (root, /proc/sys/vm writable), each reader alike.
	local cold=()
	if [[ $(id -u) == 0 && -w /proc/sys/vm/drop_caches ]]; then
		local drop="sync && echo 3 > /proc/sys/vm/drop_caches"
		def cat-cold "$drop" "${CMD[cat-shares]}"
		def check-cold "$drop" "${CMD[check]}"
		cold=(cat-cold check-cold)
	else
		NOTES+=("row 7: the page cache cannot be dropped here (not root, or /proc/sys/vm read-only): bk-check is measured against cat from the cache only")
	fi
	measure cat-shares check "${cold[@]}" join-backup repair-quick repair-full
	if ok repair-full && ! bk-check -q "$up/hosts.txt" >/dev/null 2>>"$LOGS/upkeep.log"; then
		FAILED=1
		NOTES+=("row 7: after bk-repair the backup does not check healthy (see bench/_out/logs/upkeep.log)")
	fi
	compare random "bk-check speed / cat's, the 3 shares (1.5 GiB)" check cat-shares ">=" 0.8 speed
	cpuline random "bk-check CPU time / cat's" check cat-shares
	compare random "bk-check speed / cat's, cold page cache" check-cold cat-cold ">=" 0.8 speed
	cpuline random "bk-check CPU time / cat's, cold page cache" check-cold cat-cold
	compare random "bk-repair --quick, 1 of 3 shares lost / bk-join" repair-quick join-backup "<=" 1.5
	cpuline random "bk-repair --quick CPU time / bk-join's" repair-quick join-backup
	compare random "bk-repair (reads every share first) / bk-join" repair-full join-backup "-" "-"
	rssline random "bk-check peak RSS" check bk-check
	rssline random "bk-repair peak RSS" repair-quick bk-repair
	refline random "cat of the share files (reference alone)" cat-shares cat
}

row5() {
	ROW=5 ROWNAME="restore"
	local labels=()
	hostsfiles
	def restore-ref "rm -rf $WORK/restore-ref && mkdir -p $WORK/restore-ref" \
		"T age age -d -i $KEY < $WORK/ref-mixed.age | T zstd zstd -q -d | T tar tar -x -C $WORK/restore-ref"
	def restore "rm -rf $WORK/restore-bk && mkdir -p $WORK/restore-bk" \
		"T bk-join bk-join $WORK/hosts-local.txt | T bk-restore bk-restore -i $KEY -C $WORK/restore-bk"
	# The backups to restore: from rows 1 and 4, or made now.
	if need tar zstd age; then
		[[ -s $WORK/ref-mixed.age ]] ||
			(cd "$DATA" && tar -cf - mixed | zstd -q -3 -T0 | age -r "$RECIP" >"$WORK/ref-mixed.age")
		labels+=(restore-ref)
	fi
	if need bk-pack bk-split bk-push bk-join bk-restore; then
		if ! ok e2e-local; then
			def e2e-local "$E2E_PREP" "$E2E_LOCAL"
			once e2e-local || { FAILED=1; NOTES+=("row 5: the backup to restore failed: ${ERR[e2e-local]}"); }
		fi
		ok e2e-local && labels+=(restore)
	fi
	measure "${labels[@]}"
	compare mixed "bk-join hosts|bk-restore / age -d|zstd -d|tar -x" restore restore-ref - -
	refline mixed "age -d|zstd -d|tar -x (reference alone)" restore-ref age zstd tar
	if ok restore; then
		if diff -r -q "$DATA/mixed" "$WORK/restore-bk/mixed" >"$LOGS/restore-diff.log" 2>&1; then
			NOTES+=("row 5: checked: the restored tree has the same contents as the data set")
		else
			FAILED=1
			NOTES+=("row 5: the restored tree differs from the data set: see bench/_out/logs/restore-diff.log")
		fi
		stageline mixed restore bk-join
		stageline mixed restore bk-restore
	fi
	restore_small
}

# restore_small: the small set from a local archive into tmpfs (/dev/shm),
# so that the disk's metadata work does not hide the restore's own cost
# per file; bk-restore against age -d | zstd -d | tar -x on the same set.
restore_small() {
	local shm=/dev/shm labels=()
	[[ -d $shm && -w $shm ]] || shm=$WORK
	shm=$shm/bk-bench-$$
	if need tar zstd age; then
		[[ -s $WORK/ref-small.age ]] ||
			(cd "$DATA" && tar -cf - small | zstd -q -3 -T0 | age -r "$RECIP" >"$WORK/ref-small.age")
		def restore-small-ref "rm -rf $shm/ref && mkdir -p $shm/ref" \
			"T age age -d -i $KEY < $WORK/ref-small.age | T zstd zstd -q -d | T tar tar -x -C $shm/ref"
		labels+=(restore-small-ref)
	fi
	if need bk-pack bk-restore; then
		[[ -s $WORK/pack-small.bk ]] ||
			(cd "$DATA" && bk-pack -q -r "$RECIP" small >"$WORK/pack-small.bk")
		def restore-small "rm -rf $shm/bk && mkdir -p $shm/bk" \
			"T bk-restore bk-restore -q -i $KEY -C $shm/bk < $WORK/pack-small.bk"
		labels+=(restore-small)
	fi
	CMDLINES+=("(small-file restores write into ${shm%/*}, tmpfs where there is one)")
	measure "${labels[@]}"
	compare small "bk-restore / age -d|zstd -d|tar -x (tmpfs)" restore-small restore-small-ref "<=" 1.0
	cpuline small "bk-restore CPU time / age+zstd+tar's (tmpfs)" restore-small restore-small-ref "<=" 1.2
	rssline small "bk-restore peak RSS (ref: largest of age,zstd,tar)" restore-small bk-restore restore-small-ref age zstd tar
	if ok restore-small; then
		if diff -r -q "$DATA/small" "$shm/bk/small" >"$LOGS/restore-small-diff.log" 2>&1; then
			NOTES+=("row 5: checked: the restored small set has the same contents as the data set")
		else
			FAILED=1
			NOTES+=("row 5: the restored small set differs from the data set: see bench/_out/logs/restore-small-diff.log")
		fi
	fi
	rm -rf "$shm"
}

# change1pct DIR: rewrite one file in a hundred, spread over the tree, with
# new content (a new size too), so both tools see them changed.
change1pct() {
	find "$1" -type f | sort | awk 'NR % 100 == 0' | while read -r f; do
		printf 'changed %s %s\n' "$EPOCHREALTIME" "$f" >>"$f"
	done
}

row6() {
	ROW=6 ROWNAME="incremental"
	local tree=$WORK/inc/small labels=() n
	need bk-pack restic || return 0
	# A copy of the small set, so the changes stay out of the other rows;
	# a full backup with --state, and restic's first snapshot, untimed.
	rm -rf "$WORK/inc" && mkdir -p "$WORK/inc" && cp -a "$DATA/small" "$tree"
	sleep 1.1 # nothing modified within the second the scans start
	(cd "$WORK/inc" && bk-pack -q -r "$RECIP" --state "$WORK/inc/state" -o "$WORK/inc/full.bk" small)
	SIZE[inc-full]=$(stat -c %s "$WORK/inc/full.bk")
	rm -rf "$WORK/inc/restic" && restic init -q --repo "$WORK/inc/restic" >/dev/null
	(cd "$WORK/inc" && restic -q --repo "$WORK/inc/restic" --cache-dir "$WORK/inc/restic-cache" backup small >/dev/null)
	# To stdout, the state does not advance: every run compares with the full.
	def inc-none "" "cd $WORK/inc && T bk-pack bk-pack -q -r $RECIP --state $WORK/inc/state small > $WORK/inc/none.bk"
	def restic-none "" "cd $WORK/inc && T restic restic -q --repo $WORK/inc/restic --cache-dir $WORK/inc/restic-cache backup small"
	measure inc-none restic-none
	ok inc-none && SIZE[inc-none]=$(stat -c %s "$WORK/inc/none.bk")
	compare small "no-change incremental / restic's no-change backup" inc-none restic-none "<=" 0.25
	sizeline small "no-change incremental output / the full backup's" inc-none inc-full 0.01
	# One file in a hundred changed; restic's parent snapshot moves on each
	# run, so the files are changed again before each run of both.
	def inc-1pct "change1pct $tree" "cd $WORK/inc && T bk-pack bk-pack -q -r $RECIP --state $WORK/inc/state small > $WORK/inc/1pct.bk"
	def restic-1pct "change1pct $tree" "cd $WORK/inc && T restic restic -q --repo $WORK/inc/restic --cache-dir $WORK/inc/restic-cache backup small"
	measure inc-1pct restic-1pct
	ok inc-1pct && SIZE[inc-1pct]=$(stat -c %s "$WORK/inc/1pct.bk")
	compare small "1 % changed: incremental / restic's backup" inc-1pct restic-1pct "<=" 0.5
	sizeline small "1 % changed: incremental output / the full's" inc-1pct inc-full 0.02
	rssline small "no-change incremental peak RSS" inc-none bk-pack restic-none restic
	# Memory: a tree of many entries (2,000,000 at full scale, empty files,
	# 1,000 a folder), scanned incrementally after a full backup.
	n=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 2000000 * s }')
	rm -rf "$WORK/inc/many" && mkdir -p "$WORK/inc/many"
	$PY - "$WORK/inc/many/tree" "$n" <<'PYEOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range((n + 999) // 1000):
    p = os.path.join(root, "%03d" % (d // 100), "%02d" % (d % 100))
    os.makedirs(p)
    for f in range(min(1000, n - d * 1000)):
        open(os.path.join(p, "f%04d" % f), "w").close()
PYEOF
	sleep 1.1
	(cd "$WORK/inc/many" && bk-pack -q --plaintext -l 1 --state "$WORK/inc/many/state" -o "$WORK/inc/many/full.bk" tree)
	def inc-many "" "cd $WORK/inc/many && T bk-pack bk-pack -q --plaintext --state $WORK/inc/many/state tree > /dev/null"
	REPS=1 measure inc-many
	rssline many "incremental scan of $n entries: peak RSS" inc-many bk-pack
	ok inc-many && line many "incremental scan of $n entries: time" "$(secs "${BEST[inc-many]}")" "" "-" "-" "info"
	rm -rf "$WORK/inc/many"
}

# row8: a long stream through bk-split | bk-join, from a generator that
# costs next to nothing (bench/genstream), to /dev/null: memory must stay
# flat and throughput steady from the first GiB to the last. Not repeated:
# one pass of BENCH_STREAM_GIB (64) GiB, the RSS of both tools sampled every
# few seconds.
row8() {
	ROW=8 ROWNAME="terabyte stream"
	need bk-split bk-join || return 0
	local gib=${BENCH_STREAM_GIB:-64} dir=$WORK/stream sub
	rm -rf "$dir" && mkdir -p "$dir"
	go build -o "$OUT/bin/genstream" ./bench/genstream
	CMDLINES+=("stream: genstream -gib $gib | bk-split -k 4 -n 6 | bk-join > /dev/null (RSS of bk-split and bk-join sampled every 2 s)")
	note "row 8: $gib GiB through bk-split | bk-join"
	rm -rf "$TDIR" && mkdir -p "$TDIR"
	local t0=$EPOCHREALTIME
	# Each tool writes its PID first (sh execs it), so it can be sampled.
	(set -o pipefail; genstream -gib "$gib" -marks "$dir/marks" |
		T bk-split sh -c "echo \$\$ > $dir/bk-split.pid; exec bk-split -q -k 4 -n 6" |
		T bk-join sh -c "echo \$\$ > $dir/bk-join.pid; exec bk-join -q" >/dev/null) 2>"$LOGS/stream.log" &
	sub=$!
	: >"$dir/rss"
	local s pid kib
	while kill -0 "$sub" 2>/dev/null; do
		sleep 2
		for s in bk-split bk-join; do
			pid=$(cat "$dir/$s.pid" 2>/dev/null) || continue
			kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
			[[ -n $kib ]] && echo "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') $s $kib" >>"$dir/rss"
		done
	done
	if ! wait "$sub"; then
		FAILED=1
		NOTES+=("row 8: the stream failed: $(tail -n 2 "$LOGS/stream.log" | tr '\n' ' ')")
		return 0
	fi
	local wall
	wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	# Throughput of the first GiB and of the last, from the generator's marks.
	local first last
	first=$(awk 'NR == 1 { printf "%.0f", 1024 / $2 }' "$dir/marks")
	last=$(awk '{ p = t; t = $2 } END { printf "%.0f", 1024 / (t - p) }' "$dir/marks")
	line stream "$gib GiB split|join: MiB/s, first GiB / last GiB" "$first MiB/s" "$last MiB/s" \
		"$(awk -v a="$last" -v b="$first" 'BEGIN { printf "%.2fx", a / b }')" "-" "info, ${wall} s in all"
	local firstrss lastrss
	for s in bk-split bk-join; do
		firstrss=$(awk -v s="$s" '$2 == s { print $3; exit }' "$dir/rss")
		lastrss=$(awk -v s="$s" '$2 == s { r = $3 } END { print r }' "$dir/rss")
		[[ -n $firstrss ]] || continue
		line stream "$s RSS: first sample / last (peak below)" "$(mib "$firstrss")" "$(mib "$lastrss")" \
			"$(awk -v a="$lastrss" -v b="$firstrss" 'BEGIN { printf "%.2fx", a / b }')" "-" "info, $(grep -c " $s " "$dir/rss") samples"
		RSS[stream:$s]=$(tail -n 1 "$TDIR/$s" | awk '{ print $2 }')
		STAGES[stream]+="$s "
		BEST[stream]=$wall
		rssline stream "$s peak RSS over the whole stream" stream "$s"
	done
	line stream "extrapolated to 10 TB (10^13 bytes) at the last GiB's rate" \
		"$(awk -v r="$last" 'BEGIN { printf "%.1f h", 1e13 / (r * 2^20) / 3600 }')" "" "-" "-" "info"
}

# uploadset DIR: the input of rows 9 and 10, 256 MiB of random.bin (scaled),
# as a share stream (k=2, n=3) for bk-push and as the share files of the same
# sizes for sftp and rclone; echoes its size.
uploadset() {
	local dir=$1 size
	size=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 256 * 2^20 * s }')
	rm -rf "$dir" && mkdir -p "$dir/shares"
	head -c "$size" "$DATA/random.bin" >"$dir/in.bin"
	bk-split -q -k 2 -n 3 <"$dir/in.bin" >"$dir/in.bks"
	bk-split -q -k 2 -n 3 -o "$dir/shares" <"$dir/in.bin"
	echo "$size"
}

# row9: bk-push over SFTP against OpenSSH's sftp putting the same share
# files, at once, on the same loopback sshd through the same ssh config
# (so the same cipher). One host: a 1-of-1 stream (bk-split -k 1 -n 1)
# against sftp putting its one share file; and, for information, the
# 2-of-3 stream with its other shares to tmpfs against sftp putting one
# share while cp copies the two others to tmpfs (the same work). The
# targets compare the same work: bk-push's hosts are fsync=no, as sftp's
# put does not fsync; bk-push as it is by default (each file fsync'ed)
# is compared with `put -f` (fsync@openssh.com), for information.
row9() {
	ROW=9 ROWNAME="SFTP throughput"
	need bk-split bk-push sshd ssh sftp || return 0
	start_sshd || return 0
	local dir=$WORK/sftp size shm=/dev/shm i
	[[ -d $shm && -w $shm ]] || shm=$WORK
	shm=$shm/bk-bench-$$
	size=$(uploadset "$dir")
	bk-split -q -k 1 -n 1 <"$dir/in.bin" >"$dir/in1.bks"
	bk-split -q -k 1 -n 1 -o "$dir/share1" <"$dir/in.bin"
	printf 'sftp://bkbench%s fsync=no\n' "$dir/b1" "$dir/b2" "$dir/b3" >"$dir/hosts3"
	printf 'sftp://bkbench%s\n' "$dir/b1" "$dir/b2" "$dir/b3" >"$dir/hosts3f"
	printf '%s\n' "sftp://bkbench$dir/b1 fsync=no" "$shm/one fsync=no" "$shm/two fsync=no" >"$dir/hosts1"
	printf '%s\n' "sftp://bkbench$dir/b1 fsync=no" >"$dir/hosts11"
	local shares=("$dir"/shares/*)
	for i in 0 1 2; do
		echo "put ${shares[$i]} $dir/p$((i + 1))/share" >"$dir/batch$i"
		echo "put -f ${shares[$i]} $dir/p$((i + 1))/share" >"$dir/batchf$i"
	done
	echo "put $dir/share1/share-0.bks $dir/p1/share" >"$dir/batch11"
	local prep="rm -rf $dir/b? $dir/p? $shm && mkdir -p $dir/b1 $dir/b2 $dir/b3 $dir/p1 $dir/p2 $dir/p3 $shm/one $shm/two"
	local sftp="sftp -q -F $SSHDIR/ssh_config -b"
	def sftp-push3 "$prep" "T bk-push bk-push -q --expect-size $size $dir/hosts3 < $dir/in.bks > /dev/null"
	def sftp-ref3 "$prep" "T sftp0 $sftp $dir/batch0 bkbench > /dev/null & a=\$!; T sftp1 $sftp $dir/batch1 bkbench > /dev/null & b=\$!; T sftp2 $sftp $dir/batch2 bkbench > /dev/null & c=\$!; wait \$a && wait \$b && wait \$c"
	def sftp-push3f "$prep" "T bk-push bk-push -q --expect-size $size $dir/hosts3f < $dir/in.bks > /dev/null"
	def sftp-ref3f "$prep" "T sftp0 $sftp $dir/batchf0 bkbench > /dev/null & a=\$!; T sftp1 $sftp $dir/batchf1 bkbench > /dev/null & b=\$!; T sftp2 $sftp $dir/batchf2 bkbench > /dev/null & c=\$!; wait \$a && wait \$b && wait \$c"
	def sftp-push11 "$prep" "T bk-push bk-push -q --expect-size $size $dir/hosts11 < $dir/in1.bks > /dev/null"
	def sftp-ref11 "$prep" "T sftp0 $sftp $dir/batch11 bkbench > /dev/null"
	def sftp-push1 "$prep" "T bk-push bk-push -q --expect-size $size $dir/hosts1 < $dir/in.bks > /dev/null"
	def sftp-ref1 "$prep" "T sftp0 $sftp $dir/batch0 bkbench > /dev/null & a=\$!; T cp1 cp ${shares[1]} $shm/one/share & b=\$!; T cp2 cp ${shares[2]} $shm/two/share & c=\$!; wait \$a && wait \$b && wait \$c"
	CMDLINES+=("(row 9: the loopback sshd of row 4; sftp and bk-push's ssh read the same ssh_config: cipher $($BK_SSH -v bkbench true 2>&1 | awk '/server->client cipher:/ && !c { c = $0; sub(/.*cipher: /, "", c); sub(/ .*/, "", c) } END { print c }'))")
	measure sftp-push3 sftp-ref3 sftp-push11 sftp-ref11 sftp-push1 sftp-ref1 sftp-push3f sftp-ref3f
	stop_sshd
	rm -rf "$shm" "$dir/share1"
	compare sftp "bk-push to 3 sftp hosts / 3 sftp puts at once" sftp-push3 sftp-ref3 "<=" 1.0
	compare sftp "bk-push of a 1-of-1 stream to 1 sftp host / 1 sftp put" sftp-push11 sftp-ref11 "<=" 1.0
	compare sftp "bk-push to 1 sftp host + 2 tmpfs / sftp put & cp & cp" sftp-push1 sftp-ref1 "-" ""
	compare sftp "bk-push to 3 hosts, fsync'ed (default) / 3 sftp put -f" sftp-push3f sftp-ref3f "-" ""
	medianline sftp "median of the rounds: 3 hosts / 3 sftp puts" sftp-push3 sftp-ref3
	medianline sftp "median of the rounds: 1-of-1 / 1 sftp put" sftp-push11 sftp-ref11
	cpuline sftp "bk-push CPU (3 hosts) / the 3 sftp's" sftp-push3 sftp-ref3
	cpuline sftp "bk-push CPU (1-of-1) / the sftp's" sftp-push11 sftp-ref11
	local mib
	mib=$(awk -v b="$size" 'BEGIN { print b * 1.5 / 2^20 }')
	ok sftp-push3 && line sftp "bk-push to 3 sftp hosts: MiB/s of shares" "$(awk -v m="$mib" -v t="${BEST[sftp-push3]}" 'BEGIN { printf "%.0f", m / t }')" "" "-" "-" "info"
}

# row10: bk-push to an S3 store (versitygw serving a folder on 127.0.0.1)
# against rclone copy of the same share files to the same server.
row10() {
	ROW=10 ROWNAME="S3 upload"
	local gw
	gw=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
	[[ -x $gw ]] && PATH=$PATH:${gw%/*}
	need bk-split bk-push versitygw rclone || return 0
	local dir=$WORK/s3 size port ep
	size=$(uploadset "$dir/set")
	mkdir -p "$dir/store"
	port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	ep=http://127.0.0.1:$port
	export AWS_ACCESS_KEY_ID=benchaccess AWS_SECRET_ACCESS_KEY=benchsecret0123456789 AWS_REGION=us-east-1
	ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
		setsid "$gw" --port "127.0.0.1:$port" --quiet posix "$dir/store" >"$LOGS/versitygw.log" 2>&1 &
	GW_PID=$!
	export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_BKS3_TYPE=s3 RCLONE_CONFIG_BKS3_PROVIDER=Other \
		RCLONE_CONFIG_BKS3_ENDPOINT=$ep RCLONE_CONFIG_BKS3_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID \
		RCLONE_CONFIG_BKS3_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY RCLONE_CONFIG_BKS3_REGION=us-east-1 \
		RCLONE_CONFIG_BKS3_FORCE_PATH_STYLE=true
	# rclone's AWS SDK refuses a CA bundle variable on a plain-HTTP transport.
	local rc="env -u AWS_CA_BUNDLE rclone" i
	for ((i = 0; i < 100; i++)); do
		$rc mkdir bks3:bkbench 2>/dev/null && break
		sleep 0.2
	done
	printf "s3://bkbench/b%s endpoint=$ep path-style=yes\n" 1 2 3 >"$dir/hosts"
	def s3-push "$rc purge bks3:bkbench/b1; $rc purge bks3:bkbench/b2; $rc purge bks3:bkbench/b3; true" \
		"T bk-push bk-push -q --expect-size $size $dir/hosts < $dir/set/in.bks > /dev/null"
	def s3-ref "$rc purge bks3:bkbench/r; true" "T rclone $rc copy --transfers 3 $dir/set/shares bks3:bkbench/r"
	CMDLINES+=("(row 10: versitygw $("$gw" --version 2>&1 | awk 'NR == 1 { print $NF }') serving bench/_out/work/s3/store on 127.0.0.1; rclone's remote bks3 from RCLONE_CONFIG_BKS3_* variables)")
	measure s3-push s3-ref
	stop_gw
	compare s3 "bk-push to 3 S3 prefixes / rclone copy of the 3 files" s3-push s3-ref "<=" 1.0
	cpuline s3 "bk-push CPU / rclone copy's" s3-push s3-ref
	rm -rf "$dir"
}

# bigchange PRISTINE FILE SEED: FILE becomes PRISTINE with 64 KiB inserted
# at the front and 1 MiB rewritten at a quarter, half and three quarters.
bigchange() {
	$PY - "$@" <<'PYEOF'
import os, random, sys
src, dst, rng = sys.argv[1], sys.argv[2], random.Random(int(sys.argv[3]))
size = os.path.getsize(src)
regions = [size * k // 4 for k in (1, 2, 3)]
with open(src, "rb") as f, open(dst + ".tmp", "wb") as g:
    g.write(rng.randbytes(64 << 10))
    pos = 0
    while b := bytearray(f.read(8 << 20)):
        for r in regions:
            lo, hi = max(r, pos), min(r + (1 << 20), pos + len(b))
            if lo < hi:
                b[lo - pos:hi - pos] = rng.randbytes(hi - lo)
        g.write(b)
        pos += len(b)
os.replace(dst + ".tmp", dst)
PYEOF
}

row12() {
	ROW=12 ROWNAME="large file"
	local d=$WORK/big n
	need bk-pack bk-restore restic || return 0
	n=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 2^30 * s }')
	if [[ ! -f $DATA/big ]] || (($(stat -c %s "$DATA/big") != n)); then
		note "row 12: making a $(human "$n") file"
		$PY -c 'import random, sys
rng, n = random.Random(int(sys.argv[1])), int(sys.argv[2])
with open(sys.argv[3], "wb") as f:
    while n > 0:
        f.write(rng.randbytes(min(n, 8 << 20)))
        n -= 8 << 20' "$SEED" "$n" "$DATA/big"
	fi
	# A full backup with --state and restic's first snapshot, untimed.
	rm -rf "$d" && mkdir -p "$d/tree" && cp "$DATA/big" "$d/tree/big"
	sleep 1.1
	(cd "$d" && bk-pack -q -r "$RECIP" --state "$d/state" -o "$d/full.bk" tree)
	restic init -q --repo "$d/restic" >/dev/null
	(cd "$d" && restic -q --repo "$d/restic" --cache-dir "$d/restic-cache" backup tree >/dev/null)
	# Each run changes the file afresh (restic would find chunks it has);
	# bk's runs go to stdout, so each is a delta against the full backup.
	def big-delta "bigchange $DATA/big $d/tree/big \$RANDOM" "cd $d && T bk-pack bk-pack -q -r $RECIP --state $d/state tree > $d/delta.bk"
	def restic-big "bigchange $DATA/big $d/tree/big \$RANDOM && du -sb $d/restic | cut -f1 > $d/restic.before" "cd $d && T restic restic -q --repo $d/restic --cache-dir $d/restic-cache backup tree"
	REPS=3 measure big-delta restic-big
	ok big-delta && SIZE[big-delta]=$(stat -c %s "$d/delta.bk")
	ok restic-big && SIZE[restic-big]=$(($(du -sb "$d/restic" | cut -f1) - $(cat "$d/restic.before")))
	SIZE[big-file]=$n
	compare big "3 MiB rewritten, 64 KiB inserted: incremental / restic" big-delta restic-big "<=" 1.0
	sizeline big "the same: output / restic's added repository size" big-delta restic-big 1.0
	sizeline big "the same: output / the file" big-delta big-file 0.02
	cpuline big "the same: CPU time (informational)" big-delta restic-big
	rssline big "the same: bk-pack peak RSS" big-delta bk-pack restic-big restic
	# The check: the full backup and a delta restore the changed file.
	bigchange "$DATA/big" "$d/tree/big" 7
	if (cd "$d" && bk-pack -q -r "$RECIP" --state "$d/state" tree >"$d/check.bk" &&
		bk-restore -q -i "$WORK/key.txt" -f "$d/full.bk" -f "$d/check.bk" -C "$d/restored" &&
		cmp "$d/restored/tree/big" "$d/tree/big"); then
		NOTES+=("row 12: the full backup and a delta restored the changed file exactly")
	else
		NOTES+=("row 12: FAILED: the full backup and a delta did not restore the changed file")
		FAILED=1
	fi
	rm -rf "$d/restored" "$d/restic"
}

# sizeline SET WHAT LABEL REFLABEL LIMIT: output size against a reference's.
sizeline() {
	[[ -n ${SIZE[$3]:-} && -n ${SIZE[$4]:-} ]] || return 0
	local r
	r=$(awk -v a="${SIZE[$3]}" -v b="${SIZE[$4]}" 'BEGIN { printf "%.4f", a / b }')
	line "$1" "$2" "$(human "${SIZE[$3]}")" "$(human "${SIZE[$4]}")" "${r}x" "<= ${5}x" "$(verdict "$r" "<=" "$5")"
}

# sharebytes LOG: "FETCHED TOTAL" from the last "(N of M bytes)" a bk tool
# noted in LOG: the share bytes it read, of those the backups hold.
sharebytes() {
	grep -o '([0-9]* of [0-9]* bytes)' "$1" | tail -n 1 | tr -d '()' | awk '{ print $1, $3 }'
}

# byteline SET WHAT LABEL LIMIT: the share bytes LABEL's last run read, as
# a fraction of the backups' share bytes, against LIMIT.
byteline() {
	ok "$3" || return 0
	local f t r
	read -r f t < <(sharebytes "$LOGS/$3.log")
	[[ -n ${t:-} && $t -gt 0 ]] || { NOTES+=("row $ROW: $3 said nothing of the share bytes it read"); return 0; }
	r=$(awk -v a="$f" -v b="$t" 'BEGIN { printf "%.4f", a / b }')
	line "$1" "$2" "$(human "$f")" "$(human "$t")" "${r}x" "<= ${4}x" "$(verdict "$r" "<=" "$4")"
}

row11() {
	ROW=11 ROWNAME="seekable restore, find"
	need bk-pack bk-split bk-push bk-join bk-restore bk-find || return 0
	hostsfiles
	if ! ok e2e-local; then
		def e2e-local "$E2E_PREP" "$E2E_LOCAL"
		once e2e-local || { FAILED=1; NOTES+=("row 11: the backup to restore failed: ${ERR[e2e-local]}"); return 0; }
	fi
	# The file of the mixed set nearest to 1 MiB above it.
	local file labels=()
	file=$(cd "$DATA" && find mixed -type f -size +1024k -printf '%s %p\n' | sort -n | head -n 1 | cut -d' ' -f2-)
	[[ -n $file ]] || { NOTES+=("row 11: the mixed set has no file of 1 MiB or more"); return 0; }
	def seek-one "rm -rf $WORK/seek-one" \
		"T bk-restore bk-restore -i $KEY --from $WORK/hosts-local.txt -C $WORK/seek-one $file"
	def seek-full "rm -rf $WORK/seek-full" \
		"T bk-join bk-join $WORK/hosts-local.txt | T bk-restore bk-restore -i $KEY -C $WORK/seek-full $file"
	labels+=(seek-one seek-full)
	if need restic; then
		if [[ $(cat "$WORK/restic-mixed.done" 2>/dev/null) != "$SEED $SCALE" ]]; then
			note "row 11: a restic repository of the mixed set (untimed)"
			rm -rf "$WORK/restic-mixed" "$WORK/restic-mixed-cache"
			restic init -q --repo "$WORK/restic-mixed" >/dev/null &&
				(cd "$DATA" && restic -q --repo "$WORK/restic-mixed" --cache-dir "$WORK/restic-mixed-cache" backup mixed >/dev/null) &&
				echo "$SEED $SCALE" >"$WORK/restic-mixed.done"
		fi
		def restic-one "rm -rf $WORK/restic-one" \
			"T restic restic -q --repo $WORK/restic-mixed --cache-dir $WORK/restic-mixed-cache restore latest --target $WORK/restic-one --include $file"
		labels+=(restic-one)
	fi
	# 30 backups of the mixed set: a full one and 29 incremental ones
	# (untimed), for bk-find.
	local n find=$WORK/hosts-find.txt
	printf '%s\n' "$WORK/hosts/f1" "$WORK/hosts/f2" "$WORK/hosts/f3" >"$find"
	if [[ $(cat "$WORK/find.done" 2>/dev/null) != "$SEED $SCALE $(bk-pack --version 2>&1)" ]]; then
		note "row 11: 30 backups of the mixed set for bk-find (untimed)"
		rm -rf "$WORK/hosts/f1" "$WORK/hosts/f2" "$WORK/hosts/f3" "$WORK/find-state"
		mkdir -p "$WORK/hosts/f1" "$WORK/hosts/f2" "$WORK/hosts/f3"
		for ((n = 0; n < 30; n++)); do
			(cd "$DATA" && bk-pack -q -r "$RECIP" --state "$WORK/find-state" mixed | bk-split -q -k 2 -n 3 |
				bk-push -q --state "$WORK/find-state" --name mixed "$find" >/dev/null) || { FAILED=1; NOTES+=("row 11: backup $n for bk-find failed"); return 0; }
		done
		echo "$SEED $SCALE $(bk-pack --version 2>&1)" >"$WORK/find.done"
	fi
	def find-30 "" "T bk-find bk-find -i $KEY $find ${file##*/} > $WORK/find-30.out"
	labels+=(find-30)
	measure "${labels[@]}"
	compare mixed "restore 1 file: --from hosts / bk-join|bk-restore" seek-one seek-full "<=" 0.05
	byteline mixed "restore 1 file: share bytes read / backup's" seek-one 0.02
	compare mixed "restore 1 file: --from hosts / restic --include" seek-one restic-one "<=" 1.0
	refline mixed "restic restore --include of 1 file (reference alone)" restic-one restic
	byteline mixed "bk-find over 30 backups: share bytes read / theirs" find-30 0.01
	refline mixed "bk-find over 30 backups (time alone)" find-30 bk-find
	if ok seek-one; then
		if cmp -s "$DATA/$file" "$WORK/seek-one/$file"; then
			NOTES+=("row 11: checked: the file restored from the hosts ($file, $(stat -c %s "$DATA/$file") bytes) is the data set's")
		else
			FAILED=1
			NOTES+=("row 11: the file restored from the hosts differs from the data set's $file")
		fi
	fi
	if ok find-30 && ! grep -q -- "$file" "$WORK/find-30.out"; then
		FAILED=1
		NOTES+=("row 11: bk-find did not find $file")
	fi
}

# --- report ------------------------------------------------------------------

START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T0=$SECONDS
for r in $ROWS; do
	case $r in
	[1-9] | 1[0-2]) "row$r" ;;
	*) echo "bench: error: no row $r" >&2; exit 2 ;;
	esac
done

version() { "$@" 2>&1 | head -n 1 || true; }
{
	echo "# bk benchmark, $START"
	echo
	echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 2^20 }' /proc/meminfo) RAM, $(uname -sr)"
	echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min averages at the end; the machine is shared)"
	echo "scale:    BENCH_SCALE=$SCALE, seed $SEED, best of $REPS runs taken alternately with the reference"
	echo "data:     mixed: ${DSET[mixed]#mixed } ($(du -sh "$DATA/mixed" | cut -f1) on disk)"
	echo "          small: ${DSET[small]#small } ($(du -sh "$DATA/small" | cut -f1) on disk)"
	echo "          random: ${DSET[random]#random }"
	echo "versions: bk $(version bk-pack --version | awk '{ print $NF }'), $(version go version | cut -d' ' -f3), age $(version age --version), $(version zstd --version | cut -d, -f1 | tr -d '*' | sed 's/^ *//'),"
	echo "          $(version tar --version), $(version restic version | cut -d' ' -f1-2), zfec $($PY -c 'import zfec; print(zfec.__version__)' 2>/dev/null || echo missing), $(version ssh -V)"
	echo "duration: $((SECONDS - T0)) s of measuring"
	echo
	printf '%-2s %-6s %-50s %-11s %-11s %-7s %-9s %s\n' "#" set measure bk reference ratio target result
	printf '%s\n' "${ROWLINES[@]}"
	echo
	echo "Time ratios are bk / reference (lower is better); speed ratios are reference / bk (higher is better)."
	echo "Peak RSS is that of the named process alone, from GNU time, even inside a pipeline."
	if ((${#NOTES[@]})); then
		echo
		echo "notes:"
		printf '  %s\n' "${NOTES[@]}"
	fi
	echo
	echo "commands (run in bench/_out/data for rows 1 and 4; KEY is bench/_out/work/key.txt's public key):"
	printf '  %s\n' "${CMDLINES[@]//$RECIP/KEY}"
} | tee "$RESULTS"

if ((GOBENCH)); then
	note "Go micro-benchmarks: go test -run '^\$' -bench . -benchtime 1x ./internal/..."
	{
		echo
		echo "## Go micro-benchmarks: go test -run '^\$' -bench . -benchtime 1x ./internal/..."
		go test -run '^$' -bench . -benchtime 1x ./internal/... 2>&1 || FAILED=1
	} | tee -a "$RESULTS"
fi
exit "$FAILED"
}
