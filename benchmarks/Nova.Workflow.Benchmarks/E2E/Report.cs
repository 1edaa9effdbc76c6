using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security;
using System.Text;

namespace Nova.Workflow.Benchmarks.E2E;

/// <summary>Machine and version facts for the page.</summary>
internal sealed class EnvironmentInfo
{
    public string Cpu { get; set; } = "unknown";

    public int Cores { get; set; } = Environment.ProcessorCount;

    public string Memory { get; set; } = "unknown";

    public string Os { get; set; } = RuntimeInformation.OSDescription;

    public Dictionary<string, string> Versions { get; } = [];

    public string? PostgresSettings { get; set; }

    /// <summary>Share of the CPU busy just before each (engine/storage) child started: the machine may be shared.</summary>
    public Dictionary<string, double> Busy { get; } = [];

    /// <summary>The speed probe's time just before each child started, ms (lower: a faster machine at that moment).</summary>
    public Dictionary<string, double> Probe { get; } = [];
}

/// <summary>The result table (markdown, stdout) and its chart (hand-written SVG).</summary>
internal sealed class Report(EnvironmentInfo env, Sizes sizes, IReadOnlyList<ChildResult> results, IReadOnlyList<string> storages, IReadOnlyList<string> engines, TimeSpan elapsed)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private sealed record Row(string Storage, Measure Measure, string Nova, string Hangfire, double? Ratio);

    public static EnvironmentInfo CollectEnvironment()
    {
        var env = new EnvironmentInfo();
        static string? Field(string file, string key, char separator) => File.Exists(file)
            ? File.ReadLines(file).Where(l => l.StartsWith(key, StringComparison.Ordinal)).Select(l => l[(l.IndexOf(separator, StringComparison.Ordinal) + 1)..].Trim().Trim('"')).FirstOrDefault()
            : null;
        env.Cpu = Field("/proc/cpuinfo", "model name", ':') ?? env.Cpu;
        if (Field("/proc/meminfo", "MemTotal", ':') is { } mem && long.TryParse(mem.Split(' ')[0], Inv, out var kb))
        {
            env.Memory = (kb / 1024.0 / 1024.0).ToString("0.0", Inv) + " GiB";
        }

        var kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : null;
        env.Os = $"{Field("/etc/os-release", "PRETTY_NAME", '=') ?? RuntimeInformation.OSDescription}{(kernel is null ? "" : $", Linux kernel {kernel}")}";
        env.Versions[".NET runtime"] = RuntimeInformation.FrameworkDescription;
        // Dirty when the tree differs from the commit, but for the page and chart this run rewrites: a page regenerated over
        // the last run's uncommitted one measured the committed code all the same.
        var commit = Git("describe --always --abbrev=10") ?? "unknown";
        env.Versions["Nova.Workflow commit"] = Git("status --porcelain --untracked-files=no -- . :!docs/benchmarks.md :!docs/benchmarks.svg") is null ? commit : commit + "-dirty";
        foreach (var assembly in new[] { typeof(Hangfire.BackgroundJob), typeof(Hangfire.InMemory.InMemoryStorage), typeof(Hangfire.PostgreSql.PostgreSqlStorage), typeof(Hangfire.Redis.StackExchange.RedisStorage) }.Select(t => t.Assembly))
        {
            var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0]
                ?? assembly.GetName().Version?.ToString(3) ?? "?";
            env.Versions[assembly.GetName().Name!] = version;
        }

        return env;
    }

    /// <summary>
    /// Waits (up to <paramref name="maxWait"/>) until the machine is quiet — under 20% of its CPU busy over one second —
    /// and returns the busy share then: the machine may be shared with other work, which would skew the figures.
    /// </summary>
    public static async Task<double> WaitForQuietAsync(TimeSpan maxWait, Action<string> log)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var busy = await CpuBusyAsync();
            if (busy < 0.2 || waited.Elapsed > maxWait)
            {
                return busy;
            }

            log(string.Create(CultureInfo.InvariantCulture, $"   the machine is busy ({busy * 100:0}% CPU); waiting for it to settle"));
            await Task.Delay(TimeSpan.FromSeconds(4));
        }
    }

    // The probe's memory, committed once: a fresh allocation per probe made the first probe of a run measure the kernel
    // handing out pages (135 ms against 40).
    private static readonly byte[] ProbeMemory = new byte[32 << 20];

    /// <summary>
    /// A fixed single-threaded workload (integer arithmetic, then a pass over 32 MB of memory), best of three, in ms.
    /// On this shared machine the same code ran up to about 1.5 times slower from one hour to the next with nothing else
    /// of ours running, and the busy share did not show it. This figure tells whether the single-thread speed differed
    /// between two pages; in the runs so far it did not (37-44 ms) while the figures did, so the rest lies elsewhere.
    /// </summary>
    // Compiled optimized at once: at tier 0 the probe would measure the JIT's first tier.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static double SpeedProbeMs()
    {
        var memory = ProbeMemory;
        for (var i = 0; i < memory.Length; i += 4096)
        {
            memory[i] = 1;
        }

        var best = double.MaxValue;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var sw = Stopwatch.StartNew();
            var x = 88172645463325252UL;
            for (var i = 0; i < 20_000_000; i++)
            {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }

            for (var i = 0; i < memory.Length; i += 64)
            {
                memory[i] ^= (byte)x;
            }

            best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
        }

        return best;
    }

    private static async Task<double> CpuBusyAsync()
    {
        static (long Busy, long Total)? Sample()
        {
            if (!File.Exists("/proc/stat"))
            {
                return null;
            }

            var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
            var idle = fields[3] + fields[4];
            var total = fields.Take(8).Sum();
            return (total - idle, total);
        }

        var first = Sample();
        await Task.Delay(TimeSpan.FromSeconds(1));
        var second = Sample();
        return first is { } a && second is { } b && b.Total > a.Total ? (b.Busy - a.Busy) / (double)(b.Total - a.Total) : 0;
    }

    public string Table()
    {
        var text = new StringBuilder();
        text.AppendLine("| storage | measure | Nova | Hangfire | Nova/Hangfire |");
        text.AppendLine("| --- | --- | ---: | ---: | ---: |");
        foreach (var row in Rows())
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Storage} | {row.Measure.Label} | {row.Nova} | {row.Hangfire} | {(row.Ratio is { } r ? FormatRatio(r) : "—")} |");
        }

        return text.ToString();
    }

    public string Markdown()
    {
        var md = new StringBuilder();
        void Line(string line = "") => md.AppendLine(line);
        void LineI(FormattableString line) => md.AppendLine(line.ToString(Inv));
        Line("# Benchmarks: Nova.Workflow and Hangfire 1.8");
        Line();
        Line("Generated by `./scripts/bench.sh` (the end-to-end runner, `e2e` in `benchmarks/Nova.Workflow.Benchmarks`); every run rewrites this page and `benchmarks.svg`.");
        Line();
        LineI($"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC (the run took {elapsed.TotalMinutes:0.0} min)");
        LineI($"- Machine: {env.Cpu}, {env.Cores} cores, {env.Memory} RAM; {env.Os}");
        Line("- Versions: " + string.Join("; ", env.Versions.Select(kv => $"{kv.Key} {kv.Value}")));
        Line("- CPU busy just before each pair started (the runner waits up to a minute for the machine to be under 20% busy; other work on a shared machine skews the figures): " +
            string.Join(", ", env.Busy.Select(kv => string.Create(Inv, $"{kv.Key} {kv.Value * 100:0}%"))));
        if (env.Probe.Count > 0)
        {
            Line("- Speed probe just before each pair started (a fixed single-threaded workload, best of three; lower is faster; the figures on this shared machine vary from hour to hour by up to a third, and this probe tells only whether single-thread speed was part of it): " +
                string.Join(", ", env.Probe.Select(kv => string.Create(Inv, $"{kv.Key} {kv.Value:0} ms"))));
        }

        if (env.PostgresSettings is not null)
        {
            Line($"- PostgreSQL: {env.PostgresSettings} (every commit is flushed to disk: the data directory is on the machine's ext4 disk)");
        }

        Line();
        Line("## Method");
        Line();
        Line("- One redis-server and one PostgreSQL are started per run on 127.0.0.1 (no Redis persistence). For each storage the two engines run on the same server, one after the other (Nova, then Hangfire), each in its own child process (`e2e-one`), so the peak working set is per engine. It is read after the scenarios both engines run; Nova runs them in a host that registers only their workflows, and its own scenarios in a second host afterwards. Between engines Redis gets `FLUSHALL`; on PostgreSQL each engine has its own database (`bench_nova`, `bench_hangfire`).");
        Line("- Handlers are no-ops. Work is enqueued by 64 concurrent callers where there are many jobs. Each engine first runs the same warm-up, not measured: a fifth of the independent jobs through the measured path, one chain and one fan-out, so both are measured warm (thread pool grown, connections open), as a long-running worker is. Every child runs with tiered compilation off (`DOTNET_TieredCompilation=0`, unless the runner's own environment sets it): each method is fully optimized when first compiled, so no measurement overlaps the JIT recompiling hot code in the background. With tiering on, the sub-second scenarios measured partly unoptimized code after the warm-up, for both engines (in-memory: Nova's 10,000-node workflow 72,000 nodes/s instead of 137,000, Hangfire 8,300 jobs/s instead of 14,300).");
        LineI($"- **completed/s**: from the first enqueue until the last job's handler has run (counted in the handler). **hop**: from the previous job's handler exit to the next job's handler entry (`Stopwatch.GetTimestamp`); chain and fan-out totals run from the start call to the last handler's exit. The short steps — chain, fan-out, the 100 DAGs, the large DAG and the wide workflow (about 70 ms in memory) — run {Bench.ShortStepRuns} times each and every measure is the median of its runs (the log lists them all); the others run once.");
        LineI($"- **backlog**: {sizes.Jobs:N0} no-op jobs enqueued by 64 concurrent callers to a queue (`{Bench.ParkedQueue}`) that no worker serves, then a worker for that queue is started with the same settings as the main one (Nova: a second host on the same storage, in memory sharing the first host's store and queue; Hangfire: a second `BackgroundJobServer` with `Queues = [\"{Bench.ParkedQueue}\"]`), and the drain rate runs from its start until the last job's handler has run. It follows the peak working set reading, after a warm-up of a fifth of the jobs. In the first throughput rows each engine's own workers take and finish jobs while the burst is still being enqueued, on the same server; Nova's finish them in that window, so its enqueue rate there is bounded by the server's whole work per job. There most of Nova's starts on Redis find a run slot of the worker in the same process free and the queue empty, so the root is started for that worker in the create itself and runs at once, with no claim (eager start, part of `EagerDispatch`, on by default); a start that finds jobs waiting queues behind them. The backlog rows measure the enqueue path alone, as an API sees it while the workers are stopped or behind, and how fast a worker works through a full queue.");
        Line("- Hangfire's chain is built with `ContinueJobWith` (the first job is created scheduled, the others attached as continuations, then the first moved to Enqueued when the clock starts). Hangfire OSS has no job that waits for several parents, so its fan-in is **emulated**: each leaf decrements an in-process counter and the one that reaches zero enqueues the join. This is cheaper than a real multi-server join (a storage counter) would be, so it favours Hangfire.");
        LineI($"- Nova-only rows: one workflow of {sizes.Wide:N0} independent nodes; {sizes.Dags} concurrent executions of {sizes.DagNodes}-node random layered DAGs (seed {Bench.Seed}; 5–10 layers; each node depends on 1–3 random nodes of the previous layer) and one {sizes.BigDag:N0}-node DAG built the same way with 10–20 layers; Redis memory per finished 10-node execution; PostgreSQL claim time of a 64-job batch with {sizes.Backlog:N0} jobs queued. They run in a second host after warm-ups of their own, not measured: each scenario once at full size (the 100 DAGs and the large DAG before the DAG rows), the wide workflow {(sizes.WideWarmups == 1 ? "once" : $"{sizes.WideWarmups} times")} just before its row.");
        Line();
        Line("## Settings");
        Line();
        foreach (var result in results)
        {
            Line($"- {Name(result.Engine)} on {result.Storage}: {result.Settings ?? "(not reported)"}");
        }

        Line();
        Line("## Hangfire tuning");
        Line();
        Line("Tried on this machine while choosing the settings above (full sizes, one run each on 2026-11-22; not regenerated by the runner; runs differ by about ±15%, and some overlapped other work on the shared machine, certainly the ones marked busy):");
        Line();
        Line("| storage | settings tried | completed/s | ms per hop (p50) |");
        Line("| --- | --- | --- | --- |");
        Line("| in-memory | WorkerCount 10 (busy machine) / **20** / 40 / 80 | 6,288 / **8,565** / 8,344 / 8,279 | 0.19 (0.15) / **0.27 (0.23)** / 0.28 (0.20) / 0.40 (0.20) |");
        Line("| Redis | WorkerCount 10 / 20 / 40, FetchTimeout 1 s | 596 / 709 / 752 | 7.0 (6.1) / 6.1 (5.4) / 8.0 (7.2) |");
        Line("| Redis | WorkerCount **20**, FetchTimeout 3 min (the default) | **735** | **6.3 (5.5)** |");
        Line("| PostgreSQL | EnableLongPolling false, QueuePollInterval 100 ms, WorkerCount 10 / **20** / 40 | 72 / **86** / 93 | 39 (17.6) / **23.6 (15.6)** / 184 (38.7) |");
        Line("| PostgreSQL | EnableLongPolling false, WorkerCount 20, QueuePollInterval 200 ms / 50 ms (busy machine) | 83 / 84 | 125 (31) / 200 (58) |");
        Line("| PostgreSQL | EnableLongPolling true, QueuePollInterval 100 ms, WorkerCount 10 / 40 | 79 / 10,000 jobs not done in 300 s | 138 (29.7) / 165 (33) |");
        Line();
        Line("Kept (bold): WorkerCount = ProcessorCount × 10 on every storage — more workers only add contention on 2 cores (on PostgreSQL 40 workers gave 8% more jobs/s but a mean hop 8× longer). " +
            "On PostgreSQL `EnableLongPolling = true` is slower here: in Hangfire.PostgreSql 1.21.1 each dequeue opens its own LISTEN connection, so it is off and workers poll every 100 ms. " +
            "The ~1 s p99 hops on PostgreSQL match its distributed lock, which sleeps up to 1 s between attempts when a worker picks up a continuation whose job lock is still held.");
        Line();
        Line("## Nova tuning");
        Line();
        Line("Worker concurrency, tried on this machine on 2026-11-23 with a scratch harness (one worker, 10,000-node workflow and 100 concurrent 50-node DAGs, nodes/s, medians of two or three runs; not regenerated by the runner):");
        Line();
        Line("| storage | concurrency 64 | 128 | **256** | 512 |");
        Line("| --- | --- | --- | --- | --- |");
        Line("| in-memory, 10,000-node workflow / DAGs | 177,000 / 231,000 | | **181,000 / 236,000** | |");
        Line("| Redis, 10,000-node workflow / DAGs | 10,300 / 9,300 | 12,700 / 10,700 | **14,200 / 10,700** | 13,500 / 10,800 |");
        Line("| PostgreSQL, 10,000-node workflow / DAGs | 3,600 / 3,800 | 5,600 / 4,900 and 2,600 (two runs) | **6,300 / 6,200** | 7,100 / 7,100 |");
        Line();
        Line();
        Line("The same choice on Redis with this runner (`e2e redis --engines nova --nova-concurrency N`, two runs each, alternating, 2026-11-23):");
        Line();
        Line("| concurrency | enqueued/s | completed/s | 10,000-node workflow, nodes/s | DAGs, nodes/s | ten-node workflows, nodes/s |");
        Line("| --- | --- | --- | --- | --- | --- |");
        Line("| 64 | 13,131 / 13,926 | 5,742 / 7,419 | 9,164 / 8,723 | 5,651 / 9,470 | 6,390 / 9,853 |");
        Line("| **256** | 10,081 / 9,662 | 9,623 / 9,530 | 11,925 / 13,984 | 10,482 / 12,289 | 8,035 / 11,646 |");
        Line();
        Line("Kept (bold): concurrency = ProcessorCount × 128. A slot stays taken until its node's completion is committed, so with a store a round trip away most slots wait on commits, not handlers; more slots keep the group commits and claims full (both Redis and PostgreSQL also spend less CPU per node with bigger batches). Past 256 Redis gains nothing; PostgreSQL gains a little more. " +
            "The cost: on Redis the enqueue rate falls by about a quarter, because workers that busy drain the queue while the burst of starts is still arriving and share the one connection (and Redis's one thread) with it; the same 10,000 jobs still finish sooner.");
        var failures = results.Where(r => r.Error is not null).ToList();
        if (failures.Count > 0)
        {
            Line();
            Line("## Failures");
            Line();
            foreach (var failure in failures)
            {
                Line($"- {Name(failure.Engine)} on {failure.Storage}: {failure.Error}");
            }
        }

        Line();
        Line("## Results");
        Line();
        Line("Ratio column: above 1 means Nova is better — for rates it is Nova / Hangfire, for times and memory Hangfire / Nova. “—”: the measure is Nova only.");
        Line();
        md.Append(Table());
        Line();
        Line("![chart](benchmarks.svg)");
        return md.ToString();
    }

    /// <summary>Horizontal bars of the ratio per row on a log scale, with a line at 1×.</summary>
    public string Svg()
    {
        var rows = Rows().Where(r => r.Ratio is > 0).ToList();
        const int labelWidth = 330, plotWidth = 520, right = 80, rowHeight = 22, top = 56, bottom = 40;
        var width = labelWidth + plotWidth + right;
        var height = top + Math.Max(1, rows.Count) * rowHeight + bottom;
        var logs = rows.Select(r => Math.Log10(r.Ratio!.Value)).Append(0).ToList();
        var lo = Math.Floor(logs.Min() - 0.05);
        var hi = Math.Ceiling(logs.Max() + 0.05);
        if (hi - lo < 1)
        {
            hi = lo + 1;
        }

        double X(double ratio) => labelWidth + (Math.Log10(ratio) - lo) / (hi - lo) * plotWidth;
        string F(double v) => v.ToString("0.#", Inv);
        var svg = new StringBuilder();
        svg.AppendLine(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.AppendLine(Inv, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        svg.AppendLine(Inv, $"<text x=\"{width / 2}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">Nova.Workflow vs Hangfire 1.8: ratio per measure (log scale, &gt; 1× = Nova better)</text>");
        svg.AppendLine(Inv, $"<text x=\"{width / 2}\" y=\"38\" text-anchor=\"middle\" fill=\"#555\">rates: Nova / Hangfire; times and memory: Hangfire / Nova</text>");
        var axisBottom = top + rows.Count * rowHeight;
        for (var exponent = (int)lo; exponent <= (int)hi; exponent++)
        {
            foreach (var mantissa in new[] { 1, 2, 5 })
            {
                var tick = mantissa * Math.Pow(10, exponent);
                if (Math.Log10(tick) > hi + 1e-9)
                {
                    continue;
                }

                var x = X(tick);
                var major = mantissa == 1;
                svg.AppendLine(Inv, $"<line x1=\"{F(x)}\" y1=\"{top - 4}\" x2=\"{F(x)}\" y2=\"{axisBottom}\" stroke=\"{(major ? "#ccc" : "#eee")}\"/>");
                if (major || hi - lo <= 2)
                {
                    svg.AppendLine(Inv, $"<text x=\"{F(x)}\" y=\"{axisBottom + 16}\" text-anchor=\"middle\" fill=\"#555\">{tick.ToString("#,##0.###", Inv)}×</text>");
                }
            }
        }

        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            var y = top + i * rowHeight;
            var ratio = row.Ratio!.Value;
            var (x1, x2) = (X(Math.Min(1, ratio)), X(Math.Max(1, ratio)));
            var color = ratio >= 1 ? "#2e7d32" : "#c62828";
            var label = $"{row.Storage} · {(row.Measure.Short.Length > 0 ? row.Measure.Short : row.Measure.Id)}";
            svg.AppendLine(Inv, $"<text x=\"{labelWidth - 8}\" y=\"{y + 15}\" text-anchor=\"end\">{SecurityElement.Escape(label)}</text>");
            svg.AppendLine(Inv, $"<rect x=\"{F(x1)}\" y=\"{y + 4}\" width=\"{F(Math.Max(1, x2 - x1))}\" height=\"{rowHeight - 8}\" fill=\"{color}\"/>");
            if (i > 0 && rows[i - 1].Storage != row.Storage)
            {
                svg.AppendLine(Inv, $"<line x1=\"8\" y1=\"{y}\" x2=\"{width - 8}\" y2=\"{y}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>");
            }

            var textX = ratio >= 1 ? x2 + 4 : x1 - 4;
            svg.AppendLine(Inv, $"<text x=\"{F(textX)}\" y=\"{y + 15}\" text-anchor=\"{(ratio >= 1 ? "start" : "end")}\" fill=\"{color}\">{FormatRatio(ratio)}</text>");
        }

        var one = X(1);
        svg.AppendLine(Inv, $"<line x1=\"{F(one)}\" y1=\"{top - 8}\" x2=\"{F(one)}\" y2=\"{axisBottom + 4}\" stroke=\"#000\" stroke-width=\"1.5\"/>");
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private IEnumerable<Row> Rows()
    {
        foreach (var storage in storages)
        {
            var nova = results.FirstOrDefault(r => r.Engine == "nova" && r.Storage == storage);
            var hangfire = results.FirstOrDefault(r => r.Engine == "hangfire" && r.Storage == storage);
            foreach (var measure in Measures.For(sizes).Where(m => m.Storage is null || m.Storage == storage))
            {
                var novaValue = nova?.Values.GetValueOrDefault(measure.Id);
                var hangfireValue = measure.NovaOnly ? null : hangfire?.Values.GetValueOrDefault(measure.Id);
                if (nova is not null && !nova.Values.ContainsKey(measure.Id))
                {
                    novaValue = null;
                }

                if (hangfire is not null && !hangfire.Values.ContainsKey(measure.Id))
                {
                    hangfireValue = null;
                }

                double? ratio = novaValue is > 0 && hangfireValue is > 0
                    ? measure.HigherIsBetter ? novaValue / hangfireValue : hangfireValue / novaValue
                    : null;
                yield return new Row(
                    storage,
                    measure,
                    Cell(nova, measure, novaValue, engines.Contains("nova")),
                    measure.NovaOnly ? "—" : Cell(hangfire, measure, hangfireValue, engines.Contains("hangfire")),
                    ratio);
            }
        }
    }

    private static string Cell(ChildResult? result, Measure measure, double? value, bool ran)
    {
        if (!ran || result is null)
        {
            return "not run";
        }

        if (value is { } v)
        {
            return v.ToString(measure.Format, Inv);
        }

        return result.Notes.TryGetValue(measure.Id, out var note) ? note : result.Error is not null ? "failed" : "—";
    }

    private static string FormatRatio(double ratio) => ratio.ToString(ratio >= 10 ? "#,##0" : ratio >= 1 ? "0.0" : ratio >= 0.1 ? "0.00" : "0.000", Inv) + "×";

    private static string Name(string engine) => engine == "nova" ? "Nova" : "Hangfire";

    private static string? Git(string arguments)
    {
        try
        {
            var info = new ProcessStartInfo("git", arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var git = Process.Start(info)!;
            var output = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return git.ExitCode == 0 && output.Length > 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
