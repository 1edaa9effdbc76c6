using System.Diagnostics;
using System.Globalization;

namespace Nova.Workflow.Benchmarks.E2E;

/// <summary>Scenario sizes: the full run, or <c>--quick</c> (small sizes to check that every scenario works).</summary>
internal sealed record Sizes(int Jobs, int Chain, int Fan, int Dags, int DagNodes, int BigDag, int TenNode, int Backlog, int Wide, TimeSpan WideTimeout)
{
    public static readonly Sizes Full = new(10_000, 200, 1_000, 100, 50, 1_000, 10_000, 100_000, 10_000, TimeSpan.FromSeconds(60)) { WideWarmups = 5 };

    public static readonly Sizes Quick = new(500, 50, 100, 10, 50, 200, 500, 5_000, 500, TimeSpan.FromSeconds(30));

    public static Sizes From(IEnumerable<string> args) => args.Contains("--quick") ? Quick : Full;

    /// <summary>
    /// Independent jobs each engine runs before measuring, so both are measured warm (code tiered up by the JIT, thread
    /// pool grown, storage connections open), as a long-running worker is.
    /// </summary>
    public int WarmupJobs => Jobs / 5;

    /// <summary>
    /// Unmeasured runs of the wide workflow just before its measured ones. The runner's children run with tiering off
    /// (<c>EndToEndRunner</c>), and then only the first run in a process is slow (scratch harness on Redis, fresh process:
    /// 9.1k nodes/s, then 24-26k from the second run on; it compiles the worker's code and stores the plan, which the
    /// functions then cache). One run would do; five are kept, as they cost about two seconds on Redis and six on
    /// PostgreSQL, and the runs measured after them do not depend on the one before. The commit that raised this from one blamed JIT
    /// tiering, measured in the harness with the default runtime settings; that does not hold for the runner's children,
    /// and its runner figures (13.3k with one warm-up run, 18.9k with five) were minutes apart, within this machine's
    /// hour-to-hour variation.
    /// </summary>
    public int WideWarmups { get; init; } = 1;
}

/// <summary>
/// One row kind of the result table. Ratios are oriented so that above 1 means Nova is better. <paramref name="Storage"/>
/// limits the row to one storage; <paramref name="NovaOnly"/> rows have no Hangfire counterpart.
/// </summary>
internal sealed record Measure(string Id, string Label, string Short, bool HigherIsBetter, string Format, bool NovaOnly = false, string? Storage = null);

internal static class Measures
{
    public static IReadOnlyList<Measure> For(Sizes s)
    {
        string N(int n) => n.ToString("N0", CultureInfo.InvariantCulture);
        return
        [
            new("enqueue", $"{N(s.Jobs)} independent no-op jobs (Nova: single-node workflows): enqueued/s", "no-op jobs: enqueued/s", true, "#,##0"),
            new("complete", $"{N(s.Jobs)} independent no-op jobs: completed/s (first enqueue → last handler ran)", "no-op jobs: completed/s", true, "#,##0"),
            new("backlog.enqueue", $"{N(s.Jobs)} no-op jobs queued while no worker serves their queue: enqueued/s", "backlog: enqueued/s", true, "#,##0"),
            new("backlog.drain", $"that backlog drained by a worker then started for its queue: completed/s (worker start → last handler ran)", "backlog: drained/s", true, "#,##0"),
            new("wide", $"1 workflow of {N(s.Wide)} independent nodes: nodes/s", "", true, "#,##0", NovaOnly: true),
            new("chain.total", $"{N(s.Chain)}-job chain (Hangfire: ContinueJobWith): total ms (start → last handler exit)", "chain: total", false, "#,##0.0"),
            new("chain.hop", $"{N(s.Chain)}-job chain: ms per hop (total / {N(s.Chain)})", "chain: per hop", false, "0.000"),
            new("chain.p50", $"{N(s.Chain)}-job chain: p50 hop ms (handler exit → next handler entry)", "chain: p50 hop", false, "0.000"),
            new("chain.p99", $"{N(s.Chain)}-job chain: p99 hop ms", "chain: p99 hop", false, "0.000"),
            new("fan", $"{N(s.Fan)}-wide fan-out + 1 join: total ms (Hangfire has no multi-parent join: emulated, each leaf decrements an in-process counter and the last one enqueues the join)", "fan-out + join (HF emulated)", false, "#,##0.0"),
            new("dag", $"{N(s.Dags)} concurrent {N(s.DagNodes)}-node random layered DAGs: total ms", "", false, "#,##0.0", NovaOnly: true),
            new("dag.rate", $"{N(s.Dags)} concurrent {N(s.DagNodes)}-node random layered DAGs: nodes/s", "", true, "#,##0", NovaOnly: true),
            new("bigdag", $"1 random layered DAG of {N(s.BigDag)} nodes: total ms", "", false, "#,##0.0", NovaOnly: true),
            new("ten.rate", $"{N(s.TenNode)} ten-node workflows: nodes/s", "", true, "#,##0", NovaOnly: true, Storage: "redis"),
            new("ten.bytes", "Redis memory per finished 10-node execution, bytes", "", false, "#,##0", NovaOnly: true, Storage: "redis"),
            new("ten.perGb", "finished 10-node executions per GB of Redis memory", "", true, "#,##0", NovaOnly: true, Storage: "redis"),
            new("claim", $"claim of 64 jobs with {N(s.Backlog)} queued: median ms", "", false, "0.00", NovaOnly: true, Storage: "postgres"),
            new("peak", "peak working set of the benchmark process over the shared scenarios (throughput, chain, fan-out), MB", "peak working set", false, "#,##0"),
            new("peak.added", "of which added by the engine at work: peak over the shared scenarios minus the peak once the engine had started (runtime, assemblies, idle engine), MB", "working set added", false, "#,##0"),
        ];
    }
}

/// <summary>What one child process measured for one (engine, storage) pair; the last line of its stdout as JSON.</summary>
internal sealed class ChildResult
{
    public string Engine { get; set; } = "";

    public string Storage { get; set; } = "";

    public Dictionary<string, double> Values { get; set; } = [];

    /// <summary>Text shown instead of a value (e.g. "timed out").</summary>
    public Dictionary<string, string> Notes { get; set; } = [];

    /// <summary>Engine settings as used, for the page.</summary>
    public string? Settings { get; set; }

    public string? Error { get; set; }
}

internal static class Bench
{
    /// <summary>Seed of the random layered DAGs.</summary>
    public const int Seed = 42;

    public static void Log(string engine, string storage, string message) =>
        Console.Error.WriteLine($"  [{engine}/{storage} {DateTime.Now:HH:mm:ss}] {message}");

    /// <summary>The queue of the backlog scenario (not the claim scenario's), which no worker serves until the scenario starts one.</summary>
    public const string ParkedQueue = "parked";

    /// <summary>Runs of each short step (chain, fan-out, DAGs); the median is reported.</summary>
    public const int ShortStepRuns = 5;

    /// <summary>
    /// Runs one scenario; a timeout or failure is noted on its measures (the cell shows it) and the run goes on with
    /// the next scenario. With NOVA_BENCH_MEMSAMPLE=1 it also logs the memory breakdown at the scenario's largest
    /// resident set.
    /// </summary>
    public static async Task StepAsync(ChildResult result, Action<string> log, string[] measures, string title, Func<Task> body, int repeats = 1)
    {
        log($"{title} (working set so far: peak {PeakWorkingSetMb():0} MB; {MemoryBreakdown()})");
        using var sampler = MemorySampling ? new MemorySampler() : null;
        try
        {
            // A short step runs several times and reports the median of each measure: one run of a few milliseconds is at the
            // mercy of a collection or another process landing in it.
            var runs = measures.ToDictionary(m => m, _ => new List<double>());
            for (var run = 0; run < repeats; run++)
            {
                // No full collection is forced between runs, as BenchmarkDotNet does between iterations. Tried: the in-memory
                // chain then took 2.5-2.8 ms in two or three runs of five instead of 0.5-1 ms, and the 100 DAGs ran at 120-225k
                // nodes/s instead of 150-300k (Nova only, two processes each way). Why, I did not establish.
                await body();
                foreach (var measure in measures)
                {
                    if (result.Values.TryGetValue(measure, out var value))
                    {
                        runs[measure].Add(value);
                    }
                }
            }

            if (repeats > 1)
            {
                log($"{title}: {string.Join("; ", runs.Select(r => $"{r.Key} {string.Join(" / ", r.Value.Select(v => v.ToString("0.###", CultureInfo.InvariantCulture)))}"))} (median kept)");
                foreach (var (measure, values) in runs.Where(r => r.Value.Count > 0))
                {
                    values.Sort();
                    result.Values[measure] = values[values.Count / 2];
                }
            }

            if (sampler is not null)
            {
                log($"{title}: largest resident set during the step: {sampler.AtMax}");
            }
        }
        catch (TimeoutException e)
        {
            log($"{title}: {e.Message}");
            foreach (var measure in measures)
            {
                result.Notes[measure] = e.Message.StartsWith("timed out", StringComparison.Ordinal) ? e.Message : "timed out";
            }
        }
#pragma warning disable CA1031 // Noted in the result; the other scenarios still run.
        catch (Exception e)
#pragma warning restore CA1031
        {
            log($"{title} failed: {e}");
            result.Error = result.Error is null ? $"{title}: {e.GetType().Name}: {e.Message}" : $"{result.Error}; {title}: {e.Message}";
            foreach (var measure in measures)
            {
                result.Notes[measure] = "failed";
            }
        }
    }

    /// <summary>Waits (polling every millisecond) until <paramref name="done"/> holds.</summary>
    public static async Task WaitUntilAsync(Func<bool> done, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!done())
        {
            if (sw.Elapsed > timeout)
            {
                throw new TimeoutException(string.Create(CultureInfo.InvariantCulture, $"timed out after {timeout.TotalSeconds:0} s ({what})"));
            }

            await Task.Delay(1);
        }
    }

    /// <summary>How both engines' Redis multiplexers are configured.</summary>
    public const string RedisClientSettings = "StackExchange.Redis, `SocketManager = SocketManager.ThreadPool`: replies complete on the .NET thread pool instead of the library's dedicated pipe threads, measured 25% more Nova starts/s and 28% less client CPU here";

    /// <summary>The process's peak working set so far, MB.</summary>
    public static double PeakWorkingSetMb()
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        self.Refresh();
        return self.PeakWorkingSet64 / 1e6;
    }

    /// <summary>NOVA_BENCH_MEMSAMPLE=1: sample each scenario's memory peak and list the largest resident mappings.</summary>
    private static readonly bool MemorySampling = Environment.GetEnvironmentVariable("NOVA_BENCH_MEMSAMPLE") == "1";

    /// <summary>With NOVA_BENCH_MEMSAMPLE=1, the mappings holding the most resident memory (/proc/self/smaps), one per line.</summary>
    public static string ResidentMappings()
    {
        if (!MemorySampling || !File.Exists("/proc/self/smaps"))
        {
            return string.Empty;
        }

        var rss = new Dictionary<string, long>();
        var mapping = "?";
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                rss[mapping] = rss.GetValueOrDefault(mapping) + long.Parse(parts[1], CultureInfo.InvariantCulture);
            }
            else if (parts.Length >= 5 && parts[0].Contains('-', StringComparison.Ordinal))
            {
                mapping = parts.Length >= 6 ? parts[5] : "[anonymous]";
            }
        }

        return string.Concat(rss.OrderByDescending(m => m.Value).Take(30).Select(m => string.Create(CultureInfo.InvariantCulture, $"\n      {m.Value,8} kB {m.Key}")));
    }

    /// <summary>
    /// Where the working set goes now: live and committed GC heap, anonymous, file-backed and shared (the runtime's double-mapped JIT code) resident pages
    /// (/proc/self/status), threads.
    /// </summary>
    public static string MemoryBreakdown()
    {
        var info = GC.GetGCMemoryInfo();
        var status = File.Exists("/proc/self/status") ? File.ReadAllLines("/proc/self/status") : [];
        string Field(string name) => status.FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal))?[(name.Length + 1)..].Trim() ?? "?";
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return string.Create(CultureInfo.InvariantCulture,
            $"GC heap {GC.GetTotalMemory(false) / 1e6:0} MB live, {info.TotalCommittedBytes / 1e6:0} MB committed (after the last GC: gen0/1/2/LOH/POH {string.Join('/', Enumerable.Range(0, 5).Select(g => (info.GenerationInfo[g].SizeAfterBytes / 1e6).ToString("0.0", CultureInfo.InvariantCulture)))} MB, fragmented {info.FragmentedBytes / 1e6:0.0} MB, {(info.Concurrent ? "background" : "blocking")} gen{info.Generation} #{info.Index}); RssAnon {Field("RssAnon")}, RssFile {Field("RssFile")}, RssShmem {Field("RssShmem")}; {self.Threads.Count} threads");
    }

    /// <summary>Samples the resident set (VmRSS) every millisecond and keeps the memory breakdown at its largest value.</summary>
    private sealed class MemorySampler : IDisposable
    {
        private readonly Thread _thread;
        private volatile bool _stop;
        private long _max;

        public MemorySampler()
        {
            _thread = new Thread(Run) { IsBackground = true };
            _thread.Start();
        }

        public string AtMax { get; private set; } = "";

        public void Dispose()
        {
            _stop = true;
            _thread.Join();
        }

        private void Run()
        {
            while (!_stop)
            {
                var lines = File.ReadAllLines("/proc/self/status");
                var line = lines.First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
                var anon = long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                if (anon > _max)
                {
                    _max = anon;
                    AtMax = string.Join(", ", lines.Where(l => l.StartsWith("Rss", StringComparison.Ordinal) || l.StartsWith("VmHWM", StringComparison.Ordinal)).Select(l => string.Join(' ', l.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries)))) + "; " + MemoryBreakdown() + string.Create(CultureInfo.InvariantCulture, $"; gen0 GCs {GC.CollectionCount(0)}");
                }

                Thread.Sleep(1);
            }
        }
    }

    /// <summary>Sorted hops in ms between consecutive (exit, entry) timestamps.</summary>
    public static double[] Hops(IReadOnlyList<long> enter, IReadOnlyList<long> exit)
    {
        var hops = new double[enter.Count - 1];
        for (var i = 1; i < enter.Count; i++)
        {
            hops[i - 1] = Stopwatch.GetElapsedTime(exit[i - 1], enter[i]).TotalMilliseconds;
        }

        Array.Sort(hops);
        return hops;
    }

    public static void AddChain(ChildResult result, long start, IReadOnlyList<long> enter, IReadOnlyList<long> exit)
    {
        var total = Stopwatch.GetElapsedTime(start, exit[^1]).TotalMilliseconds;
        var hops = Hops(enter, exit);
        result.Values["chain.total"] = total;
        result.Values["chain.hop"] = total / enter.Count;
        result.Values["chain.p50"] = hops[hops.Length / 2];
        result.Values["chain.p99"] = hops[(int)(hops.Length * 0.99)];
    }

    /// <summary>
    /// A random layered DAG: 1..n layers (at least one node each), every node past the first layer depends on 1–3 distinct
    /// random nodes of the layer before.
    /// </summary>
    public static WorkflowDefinition RandomLayeredDag(string name, int nodes, int minLayers, int maxLayers, Random random, string handler)
    {
        var layers = random.Next(minLayers, maxLayers + 1);
        var counts = Enumerable.Repeat(1, layers).ToArray();
        for (var i = layers; i < nodes; i++)
        {
            counts[random.Next(layers)]++;
        }

        var builder = new WorkflowBuilder(name);
        var previous = new List<string>();
        var next = 0;
        foreach (var count in counts)
        {
            var current = new List<string>(count);
            for (var k = 0; k < count; k++)
            {
                var id = $"n{next++}";
                if (previous.Count == 0)
                {
                    builder.Node(id, handler);
                }
                else
                {
                    var parents = previous.OrderBy(_ => random.Next()).Take(random.Next(1, Math.Min(3, previous.Count) + 1)).ToArray();
                    builder.Node(id, handler, n => n.DependsOn(parents));
                }

                current.Add(id);
            }

            previous = current;
        }

        return builder.Build();
    }
}
