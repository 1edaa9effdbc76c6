#!/usr/bin/env bash
# Line profile of the Redis provider's Lua function library. Runs Nova's end-to-end scenarios (the runner's child,
# `e2e-one nova redis`, quick sizes) on a redis-server of its own at a free port on 127.0.0.1 while MONITOR records every
# call, then replays the library's calls in Lua 5.1 against a mock of Redis and prints where the library's Lua spends its
# VM instructions (mock.lua says what that measures and what it does not).
# Usage: [LINES=n] benchmarks/lua-profile/profile.sh [sample period in VM instructions, default 100]; LINES: how many
# lines the report lists (40).
# Needs lua5.1 and lua-cjson (installed with apt-get when missing and run as root) and redis-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
period="${1:-100}"

if ! lua5.1 -e 'require("cjson")' 2>/dev/null; then
  apt-get install -y lua5.1 lua-cjson >/dev/null
fi
bash scripts/install-servers.sh >/dev/null

dotnet build benchmarks/Nova.Workflow.Benchmarks -c Release -v q -nologo >/dev/null
work="$(mktemp -d)"
port=""
for candidate in $(shuf -i 20000-40000 -n 50); do
  if ! (echo >"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port="$candidate"; break; fi
done
[ -n "$port" ] || { echo "no free port found" >&2; exit 1; }

redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --daemonize yes --pidfile "$work/redis.pid" >/dev/null
cleanup() {
  [ -n "${monitor:-}" ] && kill "$monitor" 2>/dev/null || true
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

redis-cli -p "$port" monitor >"$work/monitor.txt" &
monitor=$!
if ! DOTNET_TieredCompilation=0 dotnet benchmarks/Nova.Workflow.Benchmarks/bin/Release/net10.0/Nova.Workflow.Benchmarks.dll \
  e2e-one nova redis "127.0.0.1:$port,allowAdmin=true" --quick >"$work/run.log" 2>&1; then
  cat "$work/run.log" >&2
  exit 1
fi
kill "$monitor" 2>/dev/null || true
wait "$monitor" 2>/dev/null || true
monitor=""
# The library's code as loaded (FUNCTION LIST prints it after its library_code field).
redis-cli -p "$port" --raw function list withcode | awk 'code { print } /^library_code$/ { code = 1 }' >"$work/library.lua"
echo "trace: $(grep -vc '\[[0-9]* lua\]' "$work/monitor.txt") calls, $(du -h "$work/monitor.txt" | cut -f1)"
lua5.1 benchmarks/lua-profile/mock.lua "$work/library.lua" "$work/monitor.txt" "$period"
