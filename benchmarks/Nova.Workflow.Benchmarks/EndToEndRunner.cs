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
using Nova.Workflow.TestServers;
using Npgsql;
using StackExchange.Redis;

namespace Nova.Workflow.Benchmarks;

/// <summary>
/// End-to-end figures per storage: no-op throughput (10,000 single-node workflows; one workflow of
/// 10,000 independent nodes), a 200-node chain (per hop, p50, p99), a 1,000-wide fan-out joined by one
/// node, and for Redis the memory one finished 10-node execution holds.
/// </summary>
internal static class EndToEndRunner
{
    private static readonly ConcurrentDictionary<string, (long Enter, long Exit)> Marks = new();
    private static long _noops;

    public static async Task RunAsync(string[] args)
    {
        var storages = args.Length == 0 ? ["inmemory", "redis"] : args;
        Console.WriteLine($"| storage | measure | value |");
        Console.WriteLine($"| --- | --- | --- |");
        foreach (var storage in storages)
        {
            using var redis = storage == "redis" ? LocalRedis.Start() : null;
            using var postgres = storage == "postgres" ? await LocalPostgres.StartAsync() : null;
            IConnectionMultiplexer? connection = redis is null ? null : await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
            var dataSource = postgres is null ? null : await OpenPostgresAsync(postgres.ConnectionString);
            var host = await StartAsync(connection, dataSource);
            var client = host.Services.GetRequiredService<IWorkflowClient>();
            await client.RunAsync("single", timeout: TimeSpan.FromMinutes(1));
            await client.RunAsync("chain", timeout: TimeSpan.FromMinutes(1));

            // a. 10,000 single-node workflows: enqueue rate, end-to-end completion rate.
            var target = Interlocked.Read(ref _noops) + 10_000;
            var sw = Stopwatch.StartNew();
            var ids = new Guid[10_000];
            await Parallel.ForAsync(0, ids.Length, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) => ids[i] = await client.StartAsync("single", cancellationToken: ct));
            var enqueued = sw.Elapsed;
            while (Interlocked.Read(ref _noops) < target)
            {
                await Task.Delay(1);
            }

            var total = sw.Elapsed;
            await WaitAllAsync(client, ids);
            Row(storage, "10,000 single-node workflows: starts/s", ids.Length / enqueued.TotalSeconds, "0");
            Row(storage, "10,000 single-node workflows: completed nodes/s", ids.Length / total.TotalSeconds, "0");

            // a'. One workflow of 10,000 independent nodes (PostgreSQL rewrites the execution document per transition: skipped there).
            if (dataSource is null)
            {
                sw.Restart();
                await client.RunAsync("wide", timeout: TimeSpan.FromMinutes(5));
                Row(storage, "1 workflow × 10,000 independent nodes: nodes/s", 10_000 / sw.Elapsed.TotalSeconds, "0");
            }

            // b. 200-node chain: per hop from handler exit to the next handler's entry.
            Marks.Clear();
            sw.Restart();
            await client.RunAsync("chain", timeout: TimeSpan.FromMinutes(1));
            var chainTotal = sw.Elapsed;
            var hops = Enumerable.Range(1, 199).Select(i => Stopwatch.GetElapsedTime(Marks[$"c{i - 1}"].Exit, Marks[$"c{i}"].Enter).TotalMilliseconds).Order().ToArray();
            Row(storage, "200-node chain: total ms", chainTotal.TotalMilliseconds, "0.0");
            Row(storage, "200-node chain: ms per hop (total / 200)", chainTotal.TotalMilliseconds / 200, "0.000");
            Row(storage, "200-node chain: p50 hop ms", hops[hops.Length / 2], "0.000");
            Row(storage, "200-node chain: p99 hop ms", hops[(int)(hops.Length * 0.99)], "0.000");

            // c. Fan-out / fan-in.
            sw.Restart();
            await client.RunAsync("fan", timeout: TimeSpan.FromMinutes(1));
            Row(storage, "1,000-wide fan-out + join: ms", sw.Elapsed.TotalMilliseconds, "0.0");

            if (connection is not null)
            {
                // Memory one finished 10-node execution holds (kept for the retention time).
                var before = await UsedMemoryAsync(connection);
                var tenNode = new Guid[10_000];
                var tenTarget = Interlocked.Read(ref _noops) + tenNode.Length * 10;
                sw.Restart();
                await Parallel.ForAsync(0, tenNode.Length, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) => tenNode[i] = await client.StartAsync("ten", cancellationToken: ct));
                while (Interlocked.Read(ref _noops) < tenTarget)
                {
                    await Task.Delay(1);
                }

                Row(storage, "10,000 ten-node workflows: nodes/s", tenNode.Length * 10 / sw.Elapsed.TotalSeconds, "0");
                await WaitAllAsync(client, tenNode);
                var after = await UsedMemoryAsync(connection);
                Row(storage, "memory per finished 10-node execution (bytes)", (after - before) / (double)tenNode.Length, "0");
                Row(storage, "executions per GB at that size", 1e9 / ((after - before) / (double)tenNode.Length), "0");
            }

            Row(storage, "peak working set (MB)", Process.GetCurrentProcess().PeakWorkingSet64 / 1e6, "0");
            await host.StopAsync();
            if (dataSource is not null)
            {
                await ClaimWithBacklogAsync(host.Services.GetRequiredService<IJobQueue>(), dataSource, storage);
            }

            host.Dispose();
            connection?.Dispose();
            if (dataSource is not null)
            {
                await dataSource.DisposeAsync();
            }
        }
    }

    private static async Task<NpgsqlDataSource> OpenPostgresAsync(string connectionString)
    {
        var dataSource = NpgsqlDataSource.Create(connectionString);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var command = dataSource.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync();
                return dataSource;
            }
            catch (NpgsqlException) when (attempt < 100)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Claim time of a 64-job batch with 100,000 jobs queued, and the plan of the claim's scan.</summary>
    private static async Task ClaimWithBacklogAsync(IJobQueue queue, NpgsqlDataSource dataSource, string storage)
    {
        var execution = Guid.CreateVersion7();
        for (var batch = 0; batch < 100; batch++)
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

        times.Sort();
        Row(storage, "claim of 64 jobs with 100,000 queued: median ms", times[times.Count / 2], "0.00");
        await using var explain = dataSource.CreateCommand(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT id FROM nova.jobs WHERE queue = 'backlog' AND lease_token IS NULL AND not_before <= now() ORDER BY priority DESC, seq LIMIT 64 FOR UPDATE SKIP LOCKED");
        await using var reader = await explain.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            Console.WriteLine($"    plan: {reader.GetString(0)}");
        }
    }

    private static async Task<IHost> StartAsync(IConnectionMultiplexer? redis, NpgsqlDataSource? postgres)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging(l => l.SetMinimumLevel(LogLevel.Error));
        if (redis is not null)
        {
            builder.Services.AddSingleton(redis);
        }

        builder.Services.AddNovaWorkflows(nova =>
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
            nova.AddHandler("mark", (ctx, _) =>
            {
                var enter = Stopwatch.GetTimestamp();
                Marks[ctx.NodeId] = (enter, Stopwatch.GetTimestamp());
                return ValueTask.FromResult<JsonElement?>(null);
            });
            nova.AddWorkflow(new WorkflowBuilder("single").Node("a", "noop").Build());
            var wide = new WorkflowBuilder("wide");
            for (var i = 0; i < 10_000; i++)
            {
                wide.Node($"w{i}", "noop");
            }

            nova.AddWorkflow(wide.Build());
            var chain = new WorkflowBuilder("chain").Node("c0", "mark");
            for (var i = 1; i < 200; i++)
            {
                var parent = $"c{i - 1}";
                chain.Node($"c{i}", "mark", n => n.DependsOn(parent));
            }

            nova.AddWorkflow(chain.Build());
            var fan = new WorkflowBuilder("fan");
            var leaves = Enumerable.Range(0, 1000).Select(i => $"f{i}").ToArray();
            foreach (var leaf in leaves)
            {
                fan.Node(leaf, "noop");
            }

            nova.AddWorkflow(fan.Node("join", "noop", n => n.DependsOn(leaves)).Build());
            nova.AddWorkflow(new WorkflowBuilder("ten")
                .Node("n0", "noop")
                .Node("n1", "noop", n => n.DependsOn("n0")).Node("n2", "noop", n => n.DependsOn("n0")).Node("n3", "noop", n => n.DependsOn("n0"))
                .Node("n4", "noop", n => n.DependsOn("n1", "n2")).Node("n5", "noop", n => n.DependsOn("n2", "n3")).Node("n6", "noop", n => n.DependsOn("n3"))
                .Node("n7", "noop", n => n.DependsOn("n4")).Node("n8", "noop", n => n.DependsOn("n5", "n6"))
                .Node("n9", "noop", n => n.DependsOn("n7", "n8"))
                .Build());
            nova.AddWorker(w => w.Queue("default", Environment.ProcessorCount * 32));
        });
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }

    private static async Task WaitAllAsync(IWorkflowClient client, Guid[] ids)
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

    private static async Task<long> UsedMemoryAsync(IConnectionMultiplexer redis)
    {
        var info = await redis.GetServer(redis.GetEndPoints()[0]).InfoAsync("memory");
        return long.Parse(info.SelectMany(g => g).First(kv => kv.Key == "used_memory").Value, CultureInfo.InvariantCulture);
    }

    private static void Row(string storage, string measure, double value, string format) =>
        Console.WriteLine($"| {storage} | {measure} | {value.ToString(format, CultureInfo.InvariantCulture)} |");
}
