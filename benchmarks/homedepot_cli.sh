#!/usr/bin/env bash
# Every user-facing command, each in a fresh process, on the Home Depot catalog (54,667
# products: above the exact/ANN threshold), as a user runs them:
#   index, info, search, eval --protocol retrieve --pipeline all, serve + a search request.
#
#   bash benchmarks/homedepot_cli.sh [WORK_DIR]      (default /tmp/shopsearch-homedepot)
#
# Reads ../shared/data/homedepot (research use: never bundled); skips when it is absent.
# Prints each command's exit status and wall time; fails on the first non-zero status.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${HOMEDEPOT_DATA:-../shared/data/homedepot}
WORK=${1:-/tmp/shopsearch-homedepot}
BIN=${SHOPSEARCH:-.venv/bin/shopsearch}
export HF_HUB_OFFLINE=1

if [ ! -f "$DATA/products.jsonl.gz" ]; then
  echo "SKIPPED: no Home Depot data at $DATA (set HOMEDEPOT_DATA)"
  exit 0
fi
mkdir -p "$WORK"
INDEX="$WORK/index"

step() {  # step NAME COMMAND...: run, report status and time, stop on failure
  local name=$1; shift
  local start=$(date +%s.%N)
  "$@"
  local status=$?
  printf '== %s: exit %d in %.1f s\n' "$name" "$status" "$(echo "$(date +%s.%N) - $start" | bc)" >&2
  if [ "$status" -ne 0 ]; then exit "$status"; fi
}

step index "$BIN" index "$DATA/products.jsonl.gz" --out "$INDEX"
step info "$BIN" info "$INDEX"
step search "$BIN" search "$INDEX" "cordless drill" "1/2 in. pvc elbow" "white interior door" -k 5
step eval "$BIN" eval "$INDEX" --judgments "$DATA/judgments.jsonl.gz" --protocol retrieve \
  --pipeline all --json --plot "$WORK/eval.png" > "$WORK/eval.json"
python3 - "$WORK/eval.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
print("pipeline   nDCG@10  MRR@10  recall@100  p50 ms  p95 ms")
for name, s in report["pipelines"].items():
    print(f"{name:9s} {s['ndcg@10']:.4f}  {s['mrr@10']:.4f}  {s['recall@100']:.4f}"
          f"      {s.get('p50_ms', float('nan')):.1f}    {s.get('p95_ms', float('nan')):.1f}")
EOF

KEY=$("$BIN" keys create "$INDEX" --name "smoke-$$" --scopes search 2>/dev/null)
PORT=${PORT:-18931}
"$BIN" serve "$INDEX" --port "$PORT" > "$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break
  sleep 0.5
done
step serve-search curl -sf -X POST "http://127.0.0.1:$PORT/v1/search" \
  -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
  -d '{"query": "cordless drill", "k": 3}' -o "$WORK/serve_search.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print([h['product']['title'] for h in r['hits']])" "$WORK/serve_search.json"
kill -TERM "$SERVER"
wait "$SERVER"
echo "== serve: exit $? after SIGTERM"
"$BIN" keys revoke "$INDEX" "smoke-$$" 2>/dev/null
