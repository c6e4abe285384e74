# Shared by the benchmark scripts (sourced).

# Waits until the server at $1 answers /health (60 s at most).
wait_ready() {
  for _ in $(seq 1 300); do
    curl -fs "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server at $1 did not become ready" >&2
  return 1
}
