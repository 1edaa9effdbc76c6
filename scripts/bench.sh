#!/usr/bin/env bash
# Benchmarks Nova.Workflow against Hangfire 1.8 on in-memory, Redis and PostgreSQL storage and rewrites
# docs/benchmarks.md and docs/benchmarks.svg. Installs redis-server / PostgreSQL when missing, builds the
# benchmark project in Release, then runs the end-to-end runner, which starts its own redis-server and
# PostgreSQL on 127.0.0.1 and runs each (engine, storage) pair in a child process.
# Extra arguments go to the runner: storage names (inmemory redis postgres; default all three),
# --quick (small sizes, to check the scenarios; writes no docs unless --out DIR is given).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-servers.sh
dotnet build benchmarks/Nova.Workflow.Benchmarks -c Release
dotnet benchmarks/Nova.Workflow.Benchmarks/bin/Release/net10.0/Nova.Workflow.Benchmarks.dll e2e "$@"
