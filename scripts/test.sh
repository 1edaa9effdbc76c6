#!/usr/bin/env bash
# Runs every test. Installs what the provider tests need (redis-server) when it is missing;
# PostgreSQL 15 comes from Debian's postgresql-15. Test fixtures start their own servers on
# 127.0.0.1 at free ports and remove them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-servers.sh

# Build once, then run the test assemblies one after another (-m:1): the crash tests start worker
# processes, and two such suites at once on a small machine starve each other's lease heartbeats.
dotnet build Nova.Workflow.sln -c Release
dotnet test Nova.Workflow.sln -c Release --no-build -m:1 "$@"
