#!/usr/bin/env bash
# Time `make run` in a checkout: seconds until the API answers /readyz and until the LLM's prompt
# cache is warm; then send one chat message, press Ctrl-C (SIGINT to the process group) and check
# that no llama-server is left behind. Used for the README's start-up numbers.
#
#   bash scripts/time-make-run.sh [CHECKOUT]      (port 8000 must be free)
set -u
cd "${1:-.}"
start=$(date +%s.%N)
elapsed() { awk "BEGIN { printf \"%.0f\", $(date +%s.%N) - $start }"; }
setsid make run > /tmp/kefu-make-run.log 2>&1 &
pid=$!
ready=""; warm=""
for _ in $(seq 1 2400); do
  r=$(curl -s localhost:8000/readyz || true)
  if [[ -z "$ready" && "$r" == *'"ok"'* ]]; then ready=$(elapsed); fi
  if [[ "$r" == *'"warm"'* ]]; then warm=$(elapsed); break; fi
  sleep 0.5
done
echo "api answering after ${ready:-?} s, prompt cache warm after ${warm:-?} s"
token=$(curl -s localhost:8000/v1/demo/session -H 'Content-Type: application/json' -d '{"customer_id":"C0002"}' \
  | sed -E 's/.*"token":"([^"]+)".*/\1/')
curl -s localhost:8000/v1/chat -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
  -d '{"conversation_id":"time-make-run","text":"Where is my order?"}' | head -c 200; echo
kill -INT -"$pid"; wait "$pid"; echo "make run exited with $? after Ctrl-C"
sleep 1
if pgrep -f "llama-server-" >/dev/null; then echo "ORPHANED llama-server"; exit 1; else echo "no llama-server left"; fi
