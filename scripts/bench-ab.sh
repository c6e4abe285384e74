#!/usr/bin/env bash
# Two lantern builds side by side on the same model, threads and slots, alternating runs in one
# script (this machine's noise is ±15%), reported as new/old ratios: shows that a change did not
# slow plain decode. Usage:
#   scripts/bench-ab.sh OLD_BINARY [NEW_BINARY]   # NEW defaults to target/release/lantern
# Env: ROUNDS (3), THREADS (2), SLOTS (8), CTX (16384), TOKENS (128).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: scripts/bench-ab.sh OLD_BINARY [NEW_BINARY]}
NEW=${2:-target/release/lantern}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
SLOTS=${SLOTS:-8}
CTX=${CTX:-16384}
TOKENS=${TOKENS:-128}
BENCH=(target/release/lantern bench serve)
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
results=$OUT/ab.jsonl
: > "$results"

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# One server at a time, so the two never share the two cores.
run() { # name binary concurrency requests
  "$2" serve --port 18090 --threads "$THREADS" --parallel "$SLOTS" --ctx-size "$CTX" \
    >"$OUT/ab-$1.log" 2>&1 &
  local pid=$!
  wait_ready http://127.0.0.1:18090
  local json
  json=$("${BENCH[@]}" --url http://127.0.0.1:18090/v1 -c "$3" -n "$4" --max-tokens "$TOKENS" --json 2>>"$OUT/bench.log")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "{\"build\":\"$1\",\"round\":$round,${json:1}" >> "$results"
  echo "$json" | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"  $1 c=$3: {r['aggregate_tok_s']:.1f} tok/s aggregate, {r['per_stream_tok_s']:.1f} per stream\")"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS"
  for c in 1 8; do
    n=$((c == 1 ? 4 : 16))
    if ((round % 2)); then run old "$OLD" $c $n; run new "$NEW" $c $n
    else run new "$NEW" $c $n; run old "$OLD" $c $n; fi
  done
done

python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for c in (1, 8):
    med = {b: statistics.median(r["aggregate_tok_s"] for r in rows if r["build"] == b and r["concurrency"] == c)
           for b in ("old", "new")}
    print(f"c={c}: old {med['old']:.1f} tok/s, new {med['new']:.1f} tok/s, new/old {med['new'] / med['old']:.3f}")
EOF
