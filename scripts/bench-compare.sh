#!/usr/bin/env bash
# Side-by-side benchmark: lantern and llama.cpp's llama-server on the same model, threads,
# slots and context, alternating runs in one script (this machine's noise is ±15%), reported
# as ratios. Usage:
#   scripts/bench-compare.sh [LLAMA_BIN_DIR]   # default: build it with the shared reference script
# Env: ROUNDS (3), THREADS (2), SLOTS (8), CTX (16384), TOKENS (128), LANTERN (binary path),
#      PREFIX (1000: shared system-prompt tokens for the prompt-caching run), PREFIX_ONLY (0),
#      SCHEMA (1: also run every load with a json_schema response_format, to price the grammar).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
SLOTS=${SLOTS:-8}
CTX=${CTX:-16384}
TOKENS=${TOKENS:-128}
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
LANTERN=${LANTERN:-target/release/lantern}
BENCH=(target/release/lantern bench serve)
LLAMA_BIN=${1:-$(bash ../shared/tools/reference-llama-cpp.sh)}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
results=$OUT/results.jsonl
: > "$results"

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

"$LANTERN" serve --port 18080 --threads "$THREADS" --parallel "$SLOTS" --ctx-size "$CTX" \
  >"$OUT/lantern.log" 2>&1 &
LANTERN_PID=$!
# --no-repack: the reference is built with GGML_NATIVE, which on this VM includes AMX kernels that
# the hypervisor traps (SIGILL in tinygemm_kernel_amx); it disables the extra weight buffer types.
"$LLAMA_BIN/llama-server" -m "$MODEL" --port 18081 -t "$THREADS" -tb "$THREADS" -np "$SLOTS" -c "$CTX" \
  --no-repack >"$OUT/llama-server.log" 2>&1 &
LLAMA_PID=$!
trap 'kill $LANTERN_PID $LLAMA_PID 2>/dev/null || true' EXIT
wait_ready http://127.0.0.1:18080
wait_ready http://127.0.0.1:18081

# A schema whose answer can run to the token budget (one long string), so both formats decode
# about as many tokens; the grammar's cost is the difference in per-token time.
SCHEMA_FORMAT='{"type":"json_schema","json_schema":{"name":"story","strict":true,"schema":{"type":"object","properties":{"title":{"type":"string","maxLength":60},"genre":{"type":"string","enum":["adventure","mystery","drama"]},"story":{"type":"string"}},"required":["title","genre","story"],"additionalProperties":false}}}'
formats=plain
[[ ${SCHEMA:-1} == 1 ]] && formats="plain json_schema"

run() { # name url concurrency requests format
  local json extra=()
  [[ $5 == json_schema ]] && extra=(--response-format "$SCHEMA_FORMAT")
  json=$("${BENCH[@]}" --url "$2/v1" -c "$3" -n "$4" --max-tokens "$TOKENS" "${extra[@]}" --json 2>>"$OUT/bench.log")
  echo "{\"server\":\"$1\",\"format\":\"$5\",\"round\":$round,${json:1}" >> "$results"
  echo "$json" | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"  $1 $5 c=$3: {r['aggregate_tok_s']:.1f} tok/s aggregate, {r['per_stream_tok_s']:.1f} per stream, TTFT p50 {r['ttft_ms_p50']:.0f} ms\")"
}

# Prompt caching: two requests sharing a ~1000-token system prompt, TTFT of each.
PREFIX=${PREFIX:-1000}
for s in lantern llama-server; do
  if [[ $s == lantern ]]; then url=http://127.0.0.1:18080; else url=http://127.0.0.1:18081; fi
  "${BENCH[@]}" --url "$url/v1" --shared-prefix "$PREFIX" -n "$ROUNDS" --warmup 0 --json 2>>"$OUT/bench.log" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"  $s shared {r['prefix_tokens']}-token prefix: TTFT first {r['ttft_first_ms']:.0f} ms, second {r['ttft_second_ms']:.0f} ms, ratio {r['ratio']:.3f}\")" \
    | tee -a "$OUT/prefix.txt"
done
[[ ${PREFIX_ONLY:-0} == 1 ]] && exit 0

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS"
  # Alternate which server goes first so drift in machine speed does not favour one.
  if ((round % 2)); then order="lantern llama-server"; else order="llama-server lantern"; fi
  for c in 1 "$SLOTS"; do
    for f in $formats; do
      for s in $order; do
        if [[ $s == lantern ]]; then url=http://127.0.0.1:18080; else url=http://127.0.0.1:18081; fi
        run "$s" "$url" "$c" "$((c == 1 ? 4 : 2 * c))" "$f"
      done
    done
  done
done

echo "llama-bench tg$TOKENS (single-stream ceiling):"
"$LLAMA_BIN/llama-bench" -m "$MODEL" -t "$THREADS" -p 0 -n "$TOKENS" -r 3 -o json 2>/dev/null \
  | python3 -c "import json,sys; r=json.load(sys.stdin)[0]; print(f\"  {r['avg_ts']:.1f} ± {r['stddev_ts']:.1f} tok/s\")" \
  | tee "$OUT/llama-bench.txt"

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(server, c, key, fmt="plain"):
    vals = [r[key] for r in rows if r["server"] == server and r["concurrency"] == c and r["format"] == fmt]
    return statistics.median(vals)
streams = sorted({r["concurrency"] for r in rows})
print()
print("| streams | metric | lantern | llama-server | ratio |")
print("|---|---|---|---|---|")
for c in streams:
    for key, label, unit in [("aggregate_tok_s", "aggregate decode", "tok/s"),
                             ("per_stream_tok_s", "per-stream decode", "tok/s"),
                             ("ttft_ms_p50", "TTFT p50", "ms"), ("ttft_ms_p95", "TTFT p95", "ms"),
                             ("itl_ms_p50", "inter-token p50", "ms"), ("itl_ms_p95", "inter-token p95", "ms")]:
        a, b = med("lantern", c, key), med("llama-server", c, key)
        print(f"| {c} | {label} ({unit}) | {a:.1f} | {b:.1f} | {a / b:.2f} |")
if any(r["format"] == "json_schema" for r in rows):
    # Per-token cost of the grammar: inter-token p50 with the schema minus without, per server.
    print()
    print("| streams | server | plain tok/s | json_schema tok/s | ratio | inter-token p50 plain / schema (ms) | tokens per answer (schema) |")
    print("|---|---|---|---|---|---|---|")
    for c in streams:
        for s in ("lantern", "llama-server"):
            a, b = med(s, c, "per_stream_tok_s"), med(s, c, "per_stream_tok_s", "json_schema")
            ia, ib = med(s, c, "itl_ms_p50"), med(s, c, "itl_ms_p50", "json_schema")
            n = med(s, c, "tokens", "json_schema") / med(s, c, "requests", "json_schema")
            print(f"| {c} | {s} | {a:.1f} | {b:.1f} | {b / a:.2f} | {ia:.1f} / {ib:.1f} | {n:.0f} |")
PY
