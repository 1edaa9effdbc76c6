using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Nova.Workflow.Postgres;
using Nova.Workflow.Redis;
using Nova.Workflow.Storage;
using Npgsql;
using StackExchange.Redis;

namespace Nova.Workflow.Benchmarks.E2E;

/// <summary>Nova.Workflow's scenarios in one child process, through the public API (plus <see cref="IJobQueue"/> for the claim figure).</summary>
internal static class NovaRun
{
    private static readonly ConcurrentDictionary<string, (long Enter, long Exit)> Marks = new();
    private static long _noops;

    public static async Task RunAsync(ChildResult result, string storage, string connection, Sizes sizes, string[] options)
    {
        void Log(string message) => Bench.Log("nova", storage, message);
        using var redis = storage == "redis" ? await Servers.ConnectRedisAsync(connection) : null;
        await using var dataSource = storage == "postgres" ? NpgsqlDataSource.Create(connection) : null;
        // Chosen from a sweep (see Report.cs, "Nova tuning"): a slot is held through its node's commit, so a store a round trip
        // away needs more slots than handlers run at once to keep batches full.
        // --nova-concurrency N overrides it, for such sweeps.
        var at = Array.IndexOf(options, "--nova-concurrency");
        int? chosen = at < 0 ? null
            : at + 1 < options.Length && int.TryParse(options[at + 1], CultureInfo.InvariantCulture, out var n) && n > 0 ? n
            : throw new ArgumentException("--nova-concurrency takes a positive number of worker slots.");
        var concurrency = chosen ?? Environment.ProcessorCount * 128;
        result.Settings = $"worker queue \"default\", concurrency {concurrency}{(chosen is null ? " (ProcessorCount × 128)" : " (--nova-concurrency)")}" + (redis is null ? string.Empty : $"; `UseRedis()` with the app's multiplexer ({Bench.RedisClientSettings})") + "; defaults otherwise";
        // The scenarios Hangfire runs too get a host holding only their workflows, so the peak working set read after them
        // is not inflated by the plans of the Nova-only scenarios (a 10,000-node workflow, a hundred random DAGs).
        var shared = await StartAsync(redis, dataSource, sizes, concurrency, sharedOnly: true);
        var client = shared.Services.GetRequiredService<IWorkflowClient>();

        var started = Bench.PeakWorkingSetMb();
        Log($"warm-up (host started: peak {started:0} MB; {Bench.MemoryBreakdown()})");
        // The same warm-up as Hangfire's: a fifth of the jobs through the measured path, then the full chain and fan-out.
        var warmTarget = Interlocked.Read(ref _noops) + sizes.WarmupJobs;
        await Parallel.ForAsync(0, sizes.WarmupJobs, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (_, ct) => await client.StartAsync("single", cancellationToken: ct));
        await Bench.WaitUntilAsync(() => Interlocked.Read(ref _noops) >= warmTarget, TimeSpan.FromMinutes(5), "warm-up jobs");
        // Through the helper the measured steps call, so its code is compiled before the clock starts (it was not: the
        // measured chain's total included compiling it, about 2.5 ms of its 5).
        await RunAsync(client, "chain", TimeSpan.FromMinutes(1));
        await RunAsync(client, "fan", TimeSpan.FromMinutes(1));

        // a. Independent no-op jobs: single-node workflows started from 64 concurrent callers.
        await Bench.StepAsync(result, Log, ["enqueue", "complete"], $"{sizes.Jobs} single-node workflows", async () =>
        {
            var target = Interlocked.Read(ref _noops) + sizes.Jobs;
            var ids = new Guid[sizes.Jobs];
            var claimedBefore = await ClaimedAsync(shared, redis);
            var redisCpuBefore = redis is null ? 0 : await RedisCpuAsync(redis);
            var cpuBefore = Environment.CpuUsage.TotalTime;
            var sw = Stopwatch.StartNew();
            await Parallel.ForAsync(0, ids.Length, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) => ids[i] = await client.StartAsync("single", cancellationToken: ct));
            var enqueued = sw.Elapsed;
            await Bench.WaitUntilAsync(() => Interlocked.Read(ref _noops) >= target, TimeSpan.FromMinutes(5), "single-node workflows");
            var total = sw.Elapsed;
            if (redis is not null)
            {
                // The rest were eager starts: the root started in its create for this process's worker, never claimed.
                Log($"  of which taken by a claim: {await ClaimedAsync(shared, redis) - claimedBefore:N0}; CPU per workflow: Redis {(await RedisCpuAsync(redis) - redisCpuBefore) * 1e6 / sizes.Jobs:0} µs, this process {(Environment.CpuUsage.TotalTime - cpuBefore).TotalMicroseconds / sizes.Jobs:0} µs");
            }

            await WaitAllAsync(client, ids);
            result.Values["enqueue"] = ids.Length / enqueued.TotalSeconds;
            result.Values["complete"] = ids.Length / total.TotalSeconds;
        });

        // b. Chain: hop = previous handler's exit → next handler's entry.
        await Bench.StepAsync(result, Log, ["chain.total", "chain.hop", "chain.p50", "chain.p99"], $"{sizes.Chain}-node chain", async () =>
        {
            Marks.Clear();
            var start = Stopwatch.GetTimestamp();
            await RunAsync(client, "chain", TimeSpan.FromMinutes(2));
            var marks = Enumerable.Range(0, sizes.Chain).Select(i => Marks[$"c{i}"]).ToArray();
            Bench.AddChain(result, start, [.. marks.Select(m => m.Enter)], [.. marks.Select(m => m.Exit)]);
        }, Bench.ShortStepRuns);

        // c. Fan-out / fan-in: start → the join's handler exit.
        await Bench.StepAsync(result, Log, ["fan"], $"{sizes.Fan}-wide fan-out + join", async () =>
        {
            Marks.Clear();
            var start = Stopwatch.GetTimestamp();
            await RunAsync(client, "fan", TimeSpan.FromMinutes(2));
            result.Values["fan"] = Stopwatch.GetElapsedTime(start, Marks["join"].Exit).TotalMilliseconds;
        }, Bench.ShortStepRuns);

        // The peak over the scenarios Hangfire runs too; the Nova-only ones below hold far more work at once.
        result.Values["peak"] = Bench.PeakWorkingSetMb();
        result.Values["peak.added"] = result.Values["peak"] - started;
        Log($"after the shared scenarios: peak {result.Values["peak"]:0} MB; {Bench.MemoryBreakdown()}{Bench.ResidentMappings()}");

        // A backlog: single-node workflows whose node's queue no worker serves, then a worker started for that queue (in a
        // host of its own on the same storage) drains them. After a warm-up of a fifth of the jobs, as for Hangfire.
        await RunBacklogAsync(shared, redis, dataSource, concurrency, sizes.WarmupJobs);
        await Bench.StepAsync(result, Log, ["backlog.enqueue", "backlog.drain"], $"{sizes.Jobs} single-node workflows queued for no worker, then drained", async () =>
        {
            var (enqueued, drained) = await RunBacklogAsync(shared, redis, dataSource, concurrency, sizes.Jobs);
            result.Values["backlog.enqueue"] = sizes.Jobs / enqueued.TotalSeconds;
            result.Values["backlog.drain"] = sizes.Jobs / drained.TotalSeconds;
        });
        await shared.StopAsync();
        shared.Dispose();
        using var host = await StartAsync(redis, dataSource, sizes, concurrency, sharedOnly: false);
        client = host.Services.GetRequiredService<IWorkflowClient>();

        // The Nova-only scenarios are measured warm as well: each runs once at full size first, unmeasured, in this host (the
        // wide one just before its rows, below). With a fifth of the size as the warm-up, the first measured runs in memory
        // were still up to half as fast as the later ones: tens of milliseconds, while the JIT was still at the hot paths.
        Log($"warm-up of the Nova-only scenarios (host started: peak {Bench.PeakWorkingSetMb():0} MB)");
        await WaitAllAsync(client, await Task.WhenAll(Enumerable.Range(0, sizes.Dags).Select(i => client.StartAsync($"dag{i}"))));
        await RunAsync(client, "bigdag", sizes.WideTimeout);

        // d. Random layered DAGs: many small ones at once, then one large one.
        await Bench.StepAsync(result, Log, ["dag", "dag.rate"], $"{sizes.Dags} concurrent {sizes.DagNodes}-node random DAGs", async () =>
        {
            var sw = Stopwatch.StartNew();
            var dagIds = await Task.WhenAll(Enumerable.Range(0, sizes.Dags).Select(i => client.StartAsync($"dag{i}")));
            await WaitAllAsync(client, dagIds);
            result.Values["dag"] = sw.Elapsed.TotalMilliseconds;
            result.Values["dag.rate"] = sizes.Dags * sizes.DagNodes / sw.Elapsed.TotalSeconds;
        }, Bench.ShortStepRuns);
        await Bench.StepAsync(result, Log, ["bigdag"], $"{sizes.BigDag}-node random DAG", async () =>
        {
            var sw = Stopwatch.StartNew();
            await RunAsync(client, "bigdag", sizes.WideTimeout);
            result.Values["bigdag"] = sw.Elapsed.TotalMilliseconds;
        }, Bench.ShortStepRuns);

        if (redis is not null)
        {
            // Memory one finished 10-node execution holds (kept for the retention time).
            await Bench.StepAsync(result, Log, ["ten.rate", "ten.bytes", "ten.perGb"], $"{sizes.TenNode} ten-node workflows", async () =>
            {
                var before = await UsedMemoryAsync(redis);
                var tenNode = new Guid[sizes.TenNode];
                var tenTarget = Interlocked.Read(ref _noops) + tenNode.Length * 10;
                var sw = Stopwatch.StartNew();
                await Parallel.ForAsync(0, tenNode.Length, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) => tenNode[i] = await client.StartAsync("ten", cancellationToken: ct));
                await Bench.WaitUntilAsync(() => Interlocked.Read(ref _noops) >= tenTarget, TimeSpan.FromMinutes(5), "ten-node workflows");
                result.Values["ten.rate"] = tenNode.Length * 10 / sw.Elapsed.TotalSeconds;
                await WaitAllAsync(client, tenNode);
                var bytes = (await UsedMemoryAsync(redis) - before) / (double)tenNode.Length;
                result.Values["ten.bytes"] = bytes;
                result.Values["ten.perGb"] = 1e9 / bytes;
            });
        }

        // One workflow of many independent nodes (last: on PostgreSQL it may not finish in time), after unmeasured runs of it
        // (Sizes.WideWarmups). They run just before it: ahead of the DAG scenarios a warm-up made the 1,000-node DAG take 10-15 ms
        // instead of 5 in memory (more garbage promoted, so a background collection overlapped that short run).
        for (var i = 0; i < sizes.WideWarmups; i++)
        {
            await RunAsync(client, "wide", sizes.WideTimeout);
        }

        await Bench.StepAsync(result, Log, ["wide"], $"1 workflow × {sizes.Wide} independent nodes", async () =>
        {
            var sw = Stopwatch.StartNew();
            await RunAsync(client, "wide", sizes.WideTimeout);
            result.Values["wide"] = sizes.Wide / sw.Elapsed.TotalSeconds;
        }, Bench.ShortStepRuns);

        await host.StopAsync();
        if (dataSource is not null)
        {
            await Bench.StepAsync(result, Log, ["claim"], $"claim with {sizes.Backlog} queued", async () =>
                result.Values["claim"] = await ClaimWithBacklogAsync(host.Services.GetRequiredService<IJobQueue>(), dataSource, sizes.Backlog));
        }
    }

    /// <summary>
    /// Starts an execution and waits for it; past <paramref name="timeout"/> cancels it (so it does not load later
    /// scenarios) and throws a <see cref="TimeoutException"/> that says how far it got.
    /// </summary>
    private static async Task RunAsync(IWorkflowClient client, string workflow, TimeSpan timeout)
    {
        var id = await client.StartAsync(workflow);
        ExecutionSnapshot snapshot;
        try
        {
            snapshot = await client.WaitForCompletionAsync(id, timeout);
        }
        catch (TimeoutException)
        {
            var progress = (await client.GetAsync(id)).Progress;
            await client.CancelAsync(id);
            throw new TimeoutException(string.Create(CultureInfo.InvariantCulture, $"timed out after {timeout.TotalSeconds:0} s ({progress.Done:N0} of {progress.Total:N0} nodes done)"));
        }

        if (snapshot.Status != ExecutionStatus.Succeeded)
        {
            throw new InvalidOperationException($"{workflow} ended {snapshot.Status}.");
        }
    }

    /// <summary>Median claim time of a 64-job batch with a backlog queued; prints the plan of the claim's scan to stderr.</summary>
    private static async Task<double> ClaimWithBacklogAsync(IJobQueue queue, NpgsqlDataSource dataSource, int backlog)
    {
        var execution = Guid.CreateVersion7();
        for (var batch = 0; batch < backlog / 1000; batch++)
        {
            await queue.EnqueueAsync([.. Enumerable.Range(batch * 1000, 1000).Select(i => new Job(execution, $"n{i}", 1, "backlog", i % 10))]);
        }

        await using (var analyze = dataSource.CreateCommand("ANALYZE nova.jobs"))
        {
            await analyze.ExecuteNonQueryAsync();
        }

        var times = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            var sw = Stopwatch.StartNew();
            var claimed = await queue.DequeueAsync(["backlog"], 64, TimeSpan.FromMinutes(5));
            times.Add(sw.Elapsed.TotalMilliseconds);
            if (claimed.Count != 64)
            {
                throw new InvalidOperationException($"Claimed {claimed.Count} of 64.");
            }
        }

        await using var explain = dataSource.CreateCommand(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT id FROM nova.jobs WHERE queue = 'backlog' AND lease_token IS NULL AND not_before <= now() ORDER BY priority DESC, seq LIMIT 64 FOR UPDATE SKIP LOCKED");
        await using var reader = await explain.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            Console.Error.WriteLine($"    plan: {reader.GetString(0)}");
        }

        times.Sort();
        return times[times.Count / 2];
    }

    /// <summary>
    /// Starts <paramref name="count"/> backlog workflows from 64 concurrent callers of <paramref name="shared"/>'s client (no
    /// worker serves their queue), then a host whose worker serves it; returns (the time the starts took, the time from that
    /// host's start until the last handler ran).
    /// </summary>
    private static async Task<(TimeSpan Enqueued, TimeSpan Drained)> RunBacklogAsync(IHost shared, IConnectionMultiplexer? redis, NpgsqlDataSource? postgres, int concurrency, int count)
    {
        var client = shared.Services.GetRequiredService<IWorkflowClient>();
        var target = Interlocked.Read(ref _noops) + count;
        var ids = new Guid[count];
        var sw = Stopwatch.StartNew();
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) => ids[i] = await client.StartAsync("parked", cancellationToken: ct));
        var enqueued = sw.Elapsed;
        sw.Restart();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging(l => l.SetMinimumLevel(LogLevel.Error));
        AddStorage(builder.Services, redis, postgres, nova =>
        {
            if (redis is null && postgres is null)
            {
                // In memory the worker's host uses the store and queue of the host that started the workflows (neither is
                // disposable, so disposing this host leaves them as they are).
                nova.UseStorage(_ => shared.Services.GetRequiredService<IStateStore>(), _ => shared.Services.GetRequiredService<IJobQueue>());
            }

            nova.AddWorkflow(Parked());
            nova.AddWorker(w => w.Queue(Bench.ParkedQueue, concurrency));
        });
        using var worker = builder.Build();
        await worker.StartAsync();
        await Bench.WaitUntilAsync(() => Interlocked.Read(ref _noops) >= target, TimeSpan.FromMinutes(5), "backlog workflows");
        var drained = sw.Elapsed;
        await WaitAllAsync(client, ids);
        await worker.StopAsync();
        return (enqueued, drained);
    }

    private static WorkflowDefinition Parked() => new WorkflowBuilder("parked").Node("a", "noop", n => n.Queue(Bench.ParkedQueue)).Build();

    /// <summary>Adds Nova on the storage under test (in memory when neither server is given) with the no-op handler.</summary>
    private static void AddStorage(IServiceCollection services, IConnectionMultiplexer? redis, NpgsqlDataSource? postgres, Action<NovaWorkflowBuilder> configure)
    {
        if (redis is not null)
        {
            services.AddSingleton(redis);
        }

        services.AddNovaWorkflows(nova =>
        {
            if (redis is not null)
            {
                nova.UseRedis();
            }

            if (postgres is not null)
            {
                nova.Services.AddSingleton(postgres);
                nova.UsePostgres();
            }

            nova.AddHandler("noop", (_, _) =>
            {
                Interlocked.Increment(ref _noops);
                return ValueTask.FromResult<JsonElement?>(null);
            });
            configure(nova);
        });
    }

    private static async Task<IHost> StartAsync(IConnectionMultiplexer? redis, NpgsqlDataSource? postgres, Sizes sizes, int concurrency, bool sharedOnly)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging(l => l.SetMinimumLevel(LogLevel.Error));
        AddStorage(builder.Services, redis, postgres, nova =>
        {
            nova.AddHandler("mark", (ctx, _) =>
            {
                var enter = Stopwatch.GetTimestamp();
                Marks[ctx.NodeId] = (enter, Stopwatch.GetTimestamp());
                return ValueTask.FromResult<JsonElement?>(null);
            });
            nova.AddWorkflow(new WorkflowBuilder("single").Node("a", "noop").Build());
            var chain = new WorkflowBuilder("chain").Node("c0", "mark");
            for (var i = 1; i < sizes.Chain; i++)
            {
                var parent = $"c{i - 1}";
                chain.Node($"c{i}", "mark", n => n.DependsOn(parent));
            }

            nova.AddWorkflow(chain.Build());
            var fan = new WorkflowBuilder("fan");
            var leaves = Enumerable.Range(0, sizes.Fan).Select(i => $"f{i}").ToArray();
            foreach (var leaf in leaves)
            {
                fan.Node(leaf, "noop");
            }

            nova.AddWorkflow(fan.Node("join", "mark", n => n.DependsOn(leaves)).Build());
            nova.AddWorker(w => w.Queue("default", concurrency));
            if (sharedOnly)
            {
                nova.AddWorkflow(Parked());
                return;
            }

            var wide = new WorkflowBuilder("wide");
            for (var i = 0; i < sizes.Wide; i++)
            {
                wide.Node($"w{i}", "noop");
            }

            nova.AddWorkflow(wide.Build());
            var random = new Random(Bench.Seed);
            for (var i = 0; i < sizes.Dags; i++)
            {
                nova.AddWorkflow(Bench.RandomLayeredDag($"dag{i}", sizes.DagNodes, 5, 10, random, "noop"));
            }

            nova.AddWorkflow(Bench.RandomLayeredDag("bigdag", sizes.BigDag, 10, 20, random, "noop"));
            nova.AddWorkflow(Workloads.TenNode());
        });
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }

    private static async Task WaitAllAsync(IWorkflowClient client, IEnumerable<Guid> ids)
    {
        foreach (var id in ids)
        {
            var snapshot = await client.GetAsync(id);
            if (!snapshot.IsFinished)
            {
                snapshot = await client.WaitForCompletionAsync(id, TimeSpan.FromMinutes(5));
            }

            if (snapshot.Status != ExecutionStatus.Succeeded)
            {
                throw new InvalidOperationException($"Execution {id} ended {snapshot.Status}.");
            }
        }
    }

    /// <summary>How many jobs claims have taken from the host's default queue so far (its take count; 0 without Redis).</summary>
    private static async Task<long> ClaimedAsync(IHost host, IConnectionMultiplexer? redis) =>
        redis is null || host.Services.GetRequiredService<IJobQueue>() is not RedisJobQueue queue
            ? 0
            : (long?)await redis.GetDatabase().HashGetAsync(queue.KeysOf("default").All[5], "taken") ?? 0;

    /// <summary>Redis's CPU time so far (user and system), in seconds.</summary>
    private static async Task<double> RedisCpuAsync(IConnectionMultiplexer redis)
    {
        var info = (await redis.GetServer(redis.GetEndPoints()[0]).InfoAsync("cpu")).SelectMany(g => g).ToDictionary(kv => kv.Key, kv => kv.Value);
        return double.Parse(info["used_cpu_user"], CultureInfo.InvariantCulture) + double.Parse(info["used_cpu_sys"], CultureInfo.InvariantCulture);
    }

    private static async Task<long> UsedMemoryAsync(IConnectionMultiplexer redis)
    {
        var info = await redis.GetServer(redis.GetEndPoints()[0]).InfoAsync("memory");
        return long.Parse(info.SelectMany(g => g).First(kv => kv.Key == "used_memory").Value, CultureInfo.InvariantCulture);
    }
}
