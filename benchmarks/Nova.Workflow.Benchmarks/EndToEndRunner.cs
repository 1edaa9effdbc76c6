using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Nova.Workflow.Benchmarks.E2E;
using Nova.Workflow.TestServers;
using Npgsql;
using StackExchange.Redis;

namespace Nova.Workflow.Benchmarks;

/// <summary>
/// End-to-end comparison of Nova.Workflow and Hangfire 1.8 per storage (in-memory, Redis, PostgreSQL).
/// <c>e2e [storages] [--engines nova,hangfire] [--quick] [--out DIR]</c> starts one redis-server and one PostgreSQL, then runs
/// each (engine, storage) pair in its own child process (<c>e2e-one</c>), Nova first, then Hangfire, on the same server
/// (Redis flushed between engines, a separate PostgreSQL database per engine), and prints / writes the table and chart.
/// </summary>
internal static class EndToEndRunner
{
    private static readonly string[] AllStorages = ["inmemory", "redis", "postgres"];
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(10);
    private static readonly List<IDisposable> Running = [];

    public static async Task RunAsync(string[] args)
    {
        var storages = args.Where(AllStorages.Contains).ToArray();
        storages = storages.Length == 0 ? AllStorages : storages;
        var engines = (Value(args, "--engines") ?? "nova,hangfire").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var quick = args.Contains("--quick");
        var sizes = Sizes.From(args);
        var outDir = Value(args, "--out") ?? (quick ? null : DefaultDocsDir());
        var passThrough = PassThrough(args);
        var env = Report.CollectEnvironment();
        var results = new List<ChildResult>();
        var started = Stopwatch.StartNew();

        // Ctrl+C / SIGTERM: stop the child and the servers this run started, then exit as usual.
        using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => StopRunning());
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => StopRunning());

        foreach (var storage in storages)
        {
            Console.Error.WriteLine($"== {storage}");
            using var redis = storage == "redis" ? LocalRedis.Start() : null;
            using var postgres = storage == "postgres" ? await LocalPostgres.StartAsync() : null;
            Track(redis);
            Track(postgres);
            using var redisClient = redis is null ? null : await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
            await using var admin = postgres is null ? null : await Servers.OpenPostgresAsync(postgres.ConnectionString);
            if (redisClient is not null)
            {
                var info = await redisClient.GetServer(redisClient.GetEndPoints()[0]).InfoAsync("server");
                env.Versions["redis-server"] = info.SelectMany(g => g).First(kv => kv.Key == "redis_version").Value;
            }

            if (admin is not null)
            {
                env.Versions["PostgreSQL"] = (string)(await Scalar(admin, "SHOW server_version"))!;
                env.PostgresSettings = $"fsync = {await Scalar(admin, "SHOW fsync")}, synchronous_commit = {await Scalar(admin, "SHOW synchronous_commit")}, " +
                    $"shared_buffers = {await Scalar(admin, "SHOW shared_buffers")}, max_connections = {await Scalar(admin, "SHOW max_connections")}";
            }

            foreach (var engine in engines)
            {
                var connection = "-";
                if (redisClient is not null)
                {
                    await redisClient.GetServer(redisClient.GetEndPoints()[0]).FlushAllDatabasesAsync();
                    connection = redis!.ConnectionString;
                }

                if (admin is not null)
                {
                    var database = $"bench_{engine}";
                    await Execute(admin, $"DROP DATABASE IF EXISTS {database}");
                    await Execute(admin, $"CREATE DATABASE {database}");
                    connection = new NpgsqlConnectionStringBuilder(postgres!.ConnectionString) { Database = database }.ConnectionString;
                }

                var busy = await Report.WaitForQuietAsync(TimeSpan.FromMinutes(1), Console.Error.WriteLine);
                env.Busy[$"{engine}/{storage}"] = busy;
                var probe = Report.SpeedProbeMs();
                env.Probe[$"{engine}/{storage}"] = probe;
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"-- {engine} on {storage} (CPU {busy * 100:0}% busy before the start; speed probe {probe:0} ms)"));
                var result = await RunChildAsync(engine, storage, connection, passThrough);
                if (result.Error is not null)
                {
                    Console.Error.WriteLine($"   {engine}/{storage} failed: {result.Error}");
                }

                results.Add(result);
            }

            Untrack(redis);
            Untrack(postgres);
        }

        var report = new Report(env, sizes, results, storages, engines, started.Elapsed);
        Console.WriteLine(report.Table());
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            await File.WriteAllTextAsync(Path.Combine(outDir, "benchmarks.md"), report.Markdown());
            await File.WriteAllTextAsync(Path.Combine(outDir, "benchmarks.svg"), report.Svg());
            Console.Error.WriteLine($"wrote {Path.Combine(outDir, "benchmarks.md")} and benchmarks.svg ({started.Elapsed.TotalMinutes:0.0} min)");
        }
    }

    /// <summary><c>e2e-one ENGINE STORAGE CONNECTION [--quick] [--hf-...] [--nova-concurrency N]</c>: runs one pair and prints its JSON result as the last stdout line.</summary>
    public static async Task<int> RunOneAsync(string[] args)
    {
        var (engine, storage, connection) = (args[0], args[1], args[2]);
        var sizes = Sizes.From(args);
        var result = new ChildResult { Engine = engine, Storage = storage };
        try
        {
            switch (engine)
            {
                case "nova":
                    await NovaRun.RunAsync(result, storage, connection, sizes, args[3..]);
                    break;
                case "hangfire":
                    await HangfireRun.RunAsync(result, storage, connection, sizes, args[3..]);
                    break;
                default:
                    throw new ArgumentException($"Unknown engine {engine}.");
            }
        }
#pragma warning disable CA1031 // The failure is reported in the result; the orchestrator goes on with the other pairs.
        catch (Exception e)
#pragma warning restore CA1031
        {
            result.Error = $"{e.GetType().Name}: {e.Message}";
            Console.Error.WriteLine(e);
        }

        // An engine that ran extra (Nova-only) scenarios recorded its peak after the shared ones already.
        if (result.Values.TryAdd("peak", Bench.PeakWorkingSetMb()))
        {
            Bench.Log(engine, storage, $"at the end: peak {result.Values["peak"]:0} MB; {Bench.MemoryBreakdown()}{Bench.ResidentMappings()}");
        }

        Console.Out.WriteLine(JsonSerializer.Serialize(result));
        Console.Out.Flush();
        return 0;
    }

    private static async Task<ChildResult> RunChildAsync(string engine, string storage, string connection, IEnumerable<string> passThrough)
    {
        var info = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in (string[])[Assembly.GetEntryAssembly()!.Location, "e2e-one", engine, storage, connection, .. passThrough])
        {
            info.ArgumentList.Add(arg);
        }

        // Tiered compilation off (unless the caller chose otherwise): every method is fully optimized when first compiled, so
        // no measurement overlaps the JIT still recompiling hot code in the background after the warm-up. With it on, the
        // scenarios that last a fraction of a second measured partly tier-0 code, for both engines: in-memory, Nova's
        // 10,000-node workflow ran at 72,000 nodes/s (137,000 with it off) and Hangfire completed 8,300 jobs/s (14,300).
        info.Environment.TryAdd("DOTNET_TieredCompilation", "0");
        using var child = Process.Start(info) ?? throw new InvalidOperationException("The child process did not start.");
        using var tracked = new ChildGuard(child);
        Track(tracked);
        var lines = new List<string>();
        var reading = Task.Run(async () =>
        {
            while (await child.StandardOutput.ReadLineAsync() is { } line)
            {
                lines.Add(line);
            }
        });
        using var timeout = new CancellationTokenSource(ChildTimeout);
        try
        {
            await child.WaitForExitAsync(timeout.Token);
            await reading;
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            Untrack(tracked);
            return new ChildResult { Engine = engine, Storage = storage, Error = $"killed after {ChildTimeout.TotalMinutes:0} min" };
        }

        Untrack(tracked);
        var json = lines.LastOrDefault(l => l.StartsWith('{'));
        foreach (var line in lines.Where(l => l != json))
        {
            Console.Error.WriteLine($"   {line}");
        }

        return json is null
            ? new ChildResult { Engine = engine, Storage = storage, Error = $"no result (exit code {child.ExitCode})" }
            : JsonSerializer.Deserialize<ChildResult>(json)!;
    }

    private static void Track(IDisposable? item)
    {
        if (item is not null)
        {
            lock (Running)
            {
                Running.Add(item);
            }
        }
    }

    private static void Untrack(IDisposable? item)
    {
        if (item is not null)
        {
            lock (Running)
            {
                Running.Remove(item);
            }
        }
    }

    private static void StopRunning()
    {
        lock (Running)
        {
            foreach (var item in Enumerable.Reverse(Running))
            {
                item.Dispose();
            }

            Running.Clear();
        }
    }

    /// <summary>Kills the child process (and its tree) when disposed while it still runs.</summary>
    private sealed class ChildGuard(Process child) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                if (!child.HasExited)
                {
                    child.Kill(entireProcessTree: true);
                }
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
    }

    private static string DotnetHost()
    {
        var current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }

    private static string[] PassThrough(string[] args)
    {
        var list = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--quick")
            {
                list.Add(args[i]);
            }
            else if ((args[i].StartsWith("--hf-", StringComparison.Ordinal) || args[i] == "--nova-concurrency") && i + 1 < args.Length)
            {
                list.Add(args[i]);
                list.Add(args[++i]);
            }
        }

        return [.. list];
    }

    private static string? Value(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>docs/ of the repository the runner is started from (found by walking up to Nova.Workflow.sln).</summary>
    private static string? DefaultDocsDir()
    {
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Nova.Workflow.sln")))
            {
                return Path.Combine(dir.FullName, "docs");
            }
        }

        return null;
    }

    private static async Task<object?> Scalar(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return await command.ExecuteScalarAsync();
    }

    private static async Task Execute(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }
}
