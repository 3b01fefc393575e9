#!/usr/bin/env bash
# Serve a model with vLLM's OpenAI-compatible server on a GPU machine, the production LLM path.
#
#   bash serving/vllm.sh [MODEL] [SERVED_NAME] [PORT]
#
# Then point Kefu at it:
#   KEFU_LLM_BACKEND=vllm KEFU_LLM_BASE_URL=http://GPU-HOST:8001/v1 KEFU_LLM_MODEL=kefu-chat make run
#
# Kefu uses only what llama-server and vLLM both support: JSON-schema structured output
# (intent), token log-probabilities (confidence), tool calls (Hermes format for Qwen models;
# Kefu also reads tool calls that a model writes as JSON text) and prompt caching. vLLM is not
# installable on the CPU build machines (its wheels pin a CUDA torch); install it on the GPU host:
#   pip install vllm
set -euo pipefail
MODEL="${1:-Qwen/Qwen2.5-7B-Instruct}"
SERVED_NAME="${2:-kefu-chat}"
PORT="${3:-8001}"
exec vllm serve "$MODEL" \
  --served-model-name "$SERVED_NAME" \
  --host 0.0.0.0 --port "$PORT" \
  --enable-auto-tool-choice --tool-call-parser hermes \
  --enable-prefix-caching \
  --max-model-len 8192
