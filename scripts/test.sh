#!/usr/bin/env bash
# Runs every test. Installs what the provider tests need (redis-server) when it is missing;
# PostgreSQL 15 comes from Debian's postgresql-15. Test fixtures start their own servers on
# 127.0.0.1 at free ports and remove them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

# Build once, then run the test assemblies one after another (-m:1): the crash tests start worker
# processes, and two such suites at once on a small machine starve each other's lease heartbeats.
dotnet build Nova.Workflow.sln -c Release
dotnet test Nova.Workflow.sln -c Release --no-build -m:1 "$@"
