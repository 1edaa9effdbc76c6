#!/usr/bin/env bash
# Runs the BenchmarkDotNet hot-path benchmarks (sorter, scheduling step, serialization, Redis and PostgreSQL store
# calls, in-memory engine; allocations reported by MemoryDiagnoser) and writes docs/microbenchmarks.md from their
# GitHub-markdown reports. The Redis and PostgreSQL benchmarks start their own servers on 127.0.0.1.
# Extra arguments go to BenchmarkDotNet instead of the default `--filter '*' --job short`; with a filter that
# selects only some benchmarks, the page lists only those. The page is replaced only when reports were written.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-servers.sh
dotnet build benchmarks/Nova.Workflow.Benchmarks -c Release
artifacts=$(mktemp -d)
trap 'rm -rf "$artifacts"' EXIT
if [ "$#" -eq 0 ]; then set -- --filter '*' --job short; fi
# The arguments as a shell would take them back, for the page.
arguments=$(printf ' %q' "$@")
dotnet benchmarks/Nova.Workflow.Benchmarks/bin/Release/net10.0/Nova.Workflow.Benchmarks.dll "$@" \
  --artifacts "$artifacts" --exporters github

shopt -s nullglob
reports=("$artifacts"/results/*-report-github.md)
if [ "${#reports[@]}" -eq 0 ]; then
  echo "BenchmarkDotNet wrote no reports (does the filter match a benchmark?); docs/microbenchmarks.md is unchanged." >&2
  exit 1
fi

out=docs/microbenchmarks.md
{
  echo "# Micro-benchmarks (BenchmarkDotNet)"
  echo
  echo "Written by \`./scripts/microbench.sh\` (BenchmarkDotNet arguments:\`${arguments}\`) on $(date -u '+%Y-%m-%d %H:%M') UTC."
  echo "Each table's header names the machine, the runtime and BenchmarkDotNet's job; **Allocated** is the managed memory"
  echo "one operation allocates. The end-to-end comparison with Hangfire is in [benchmarks.md](benchmarks.md)."
  for report in "${reports[@]}"; do
    name=$(basename "$report" -report-github.md)
    echo
    echo "## ${name##*.}"
    echo
    # Benchmark descriptions are quoted in the report, and the quotes written as HTML entities.
    sed "s/&#39;/'/g" "$report"
  done
} > "$artifacts/page.md"
mv "$artifacts/page.md" "$out"
echo "wrote $out"
