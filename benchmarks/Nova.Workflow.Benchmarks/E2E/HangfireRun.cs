using System.Diagnostics;
using System.Globalization;
using Hangfire;
using Hangfire.InMemory;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Hangfire.Redis.StackExchange;
using Hangfire.States;
using StackExchange.Redis;

namespace Nova.Workflow.Benchmarks.E2E;

/// <summary>
/// Hangfire 1.8's side of the same scenarios in one child process: an explicit <see cref="BackgroundJobServer"/> and
/// <see cref="BackgroundJobClient"/> on the storage under test (no static storage).
/// </summary>
internal static class HangfireRun
{
    public static async Task RunAsync(ChildResult result, string storage, string connection, Sizes sizes, IReadOnlyList<string> args)
    {
        void Log(string message) => Bench.Log("hangfire", storage, message);

        // The serializer settings the Hangfire 1.8 docs recommend for new installs (global: the job serializer is static).
        GlobalConfiguration.Configuration
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings();

        if (Option(args, "--hf-log") == 1)
        {
            GlobalConfiguration.Configuration.UseColouredConsoleLogProvider(Hangfire.Logging.LogLevel.Info);
        }

        var workers = Option(args, "--hf-workers") ?? DefaultWorkers(storage);
        var pollMs = Option(args, "--hf-poll-ms") ?? DefaultPollMs(storage);
        var longPolling = (Option(args, "--hf-long-polling") ?? 0) == 1;
        using var redis = storage == "redis" ? await Servers.ConnectRedisAsync(connection) : null;
        JobStorage jobStorage;
        string storageSettings;
        switch (storage)
        {
            case "inmemory":
                jobStorage = new InMemoryStorage(new InMemoryStorageOptions());
                storageSettings = "`new InMemoryStorage(new InMemoryStorageOptions())` (defaults: IdType = Long, MaxExpirationTime = 3 h)";
                break;
            case "redis":
                var redisOptions = new RedisStorageOptions { Prefix = "{hangfire-bench}:", FetchTimeout = TimeSpan.FromMilliseconds(pollMs) };
                jobStorage = new RedisStorage(redis!, redisOptions);
                storageSettings = $"`new RedisStorage(multiplexer ({Bench.RedisClientSettings}), new RedisStorageOptions {{ Prefix = \"{redisOptions.Prefix}\", FetchTimeout = {Duration(pollMs)} }})` " +
                    $"(idle workers wake on the storage's pub/sub channel, FetchTimeout only bounds a missed wake-up; InvisibilityTimeout {redisOptions.InvisibilityTimeout.TotalMinutes:0} min and UseTransactions = {redisOptions.UseTransactions}, the defaults)";
                break;
            case "postgres":
                var pgOptions = new PostgreSqlStorageOptions
                {
                    QueuePollInterval = TimeSpan.FromMilliseconds(pollMs),
                    EnableLongPolling = longPolling,
                    UseSlidingInvisibilityTimeout = true,
                    PrepareSchemaIfNecessary = true,
                };
                jobStorage = new PostgreSqlStorage(new NpgsqlConnectionFactory(connection, pgOptions, null), pgOptions);
                storageSettings = $"`new PostgreSqlStorage(new NpgsqlConnectionFactory(...), new PostgreSqlStorageOptions {{ QueuePollInterval = {Duration(pollMs)}, EnableLongPolling = {longPolling.ToString().ToLowerInvariant()}, " +
                    "UseSlidingInvisibilityTimeout = true, PrepareSchemaIfNecessary = true })` (UseNativeDatabaseTransactions = true, the default; the pool allows 100 connections)";
                break;
            default:
                throw new ArgumentException($"Unknown storage {storage}.");
        }

        // Enqueuing is synchronous: 64 concurrent callers on the thread pool, whose minimum is raised so they start at once.
        ThreadPool.GetMinThreads(out var minWorkers, out var minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorkers, 64 + Environment.ProcessorCount), minIo);

        var serverOptions = new BackgroundJobServerOptions
        {
            WorkerCount = workers,
            Queues = ["default"],
            SchedulePollingInterval = TimeSpan.FromSeconds(1),
            ServerName = "bench",
        };
        result.Settings = $"{storageSettings}; `new BackgroundJobServer(new BackgroundJobServerOptions {{ WorkerCount = {workers}{(workers == DefaultWorkers(storage) ? " (ProcessorCount × 10)" : "")}, Queues = [\"default\"], " +
            $"SchedulePollingInterval = 1 s }}, storage)`; `new BackgroundJobClient(storage)` called from 64 concurrent callers; " +
            "`SetDataCompatibilityLevel(Version_180).UseSimpleAssemblyNameTypeSerializer().UseRecommendedSerializerSettings()`; default job filters";
        var client = new BackgroundJobClient(jobStorage);
        HangfireJobs.Client = client;
        using var server = new BackgroundJobServer(serverOptions, jobStorage);

        var started = Bench.PeakWorkingSetMb();
        Log($"warm-up (workers {workers}, poll {pollMs} ms; server started: peak {started:0} MB; {Bench.MemoryBreakdown()})");
        // The same warm-up as Nova's: a fifth of the jobs through the measured path, then the full chain and fan-out.
        await RunJobsAsync(client, sizes.WarmupJobs);
        await RunChainAsync(client, sizes.Chain);
        await RunFanAsync(client, sizes.Fan);

        await Bench.StepAsync(result, Log, ["enqueue", "complete"], $"{sizes.Jobs} jobs", async () =>
        {
            var (enqueued, completed) = await RunJobsAsync(client, sizes.Jobs);
            result.Values["enqueue"] = sizes.Jobs / enqueued.TotalSeconds;
            result.Values["complete"] = sizes.Jobs / completed.TotalSeconds;
        });

        await Bench.StepAsync(result, Log, ["chain.total", "chain.hop", "chain.p50", "chain.p99"], $"{sizes.Chain}-job chain", async () =>
        {
            var (start, enter, exit) = await RunChainAsync(client, sizes.Chain);
            Bench.AddChain(result, start, enter, exit);
        }, Bench.ShortStepRuns);

        await Bench.StepAsync(result, Log, ["fan"], $"{sizes.Fan}-wide fan-out + emulated join", async () =>
            result.Values["fan"] = (await RunFanAsync(client, sizes.Fan)).TotalMilliseconds, Bench.ShortStepRuns);

        result.Values["peak"] = Bench.PeakWorkingSetMb();
        result.Values["peak.added"] = result.Values["peak"] - started;
        Log($"after the shared scenarios: peak {result.Values["peak"]:0} MB; {Bench.MemoryBreakdown()}{Bench.ResidentMappings()}");

        // A backlog: jobs queued while no worker serves their queue, then a server started for it drains them (after a
        // warm-up of a fifth of the jobs, as for the other scenarios).
        var backlogOptions = new BackgroundJobServerOptions
        {
            WorkerCount = workers,
            Queues = [Bench.ParkedQueue],
            SchedulePollingInterval = serverOptions.SchedulePollingInterval,
            ServerName = "bench-backlog",
        };
        await RunBacklogAsync(client, jobStorage, backlogOptions, sizes.WarmupJobs);
        await Bench.StepAsync(result, Log, ["backlog.enqueue", "backlog.drain"], $"{sizes.Jobs} jobs queued for no worker, then drained", async () =>
        {
            var (enqueued, drained) = await RunBacklogAsync(client, jobStorage, backlogOptions, sizes.Jobs);
            result.Values["backlog.enqueue"] = sizes.Jobs / enqueued.TotalSeconds;
            result.Values["backlog.drain"] = sizes.Jobs / drained.TotalSeconds;
        });
        server.SendStop();
    }

    /// <summary>
    /// Enqueues <paramref name="count"/> no-op jobs to the backlog queue from 64 concurrent callers while no server serves it,
    /// then starts one that does; returns (enqueue time, time from that server's start until the last job ran).
    /// </summary>
    private static async Task<(TimeSpan Enqueued, TimeSpan Drained)> RunBacklogAsync(BackgroundJobClient client, JobStorage storage, BackgroundJobServerOptions options, int count)
    {
        var target = HangfireJobs.NoopCount + count;
        var queued = new EnqueuedState(Bench.ParkedQueue);
        var sw = Stopwatch.StartNew();
        await Task.Run(() => Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = 64 }, _ => client.Create(() => HangfireJobs.Noop(), queued)));
        var enqueued = sw.Elapsed;
        sw.Restart();
        using var server = new BackgroundJobServer(options, storage);
        await Bench.WaitUntilAsync(() => HangfireJobs.NoopCount >= target, TimeSpan.FromMinutes(5), "Hangfire backlog");
        var drained = sw.Elapsed;
        server.SendStop();
        return (enqueued, drained);
    }

    /// <summary>ProcessorCount × 10 gave Hangfire its best figures on every storage here (see Report's tuning notes).</summary>
    private static int DefaultWorkers(string storage) => Environment.ProcessorCount * 10;

    /// <summary>Redis: the library's FetchTimeout (3 min); PostgreSQL: QueuePollInterval 100 ms.</summary>
    private static int DefaultPollMs(string storage) => storage == "redis" ? (int)new RedisStorageOptions().FetchTimeout.TotalMilliseconds : 100;

    private static string Duration(int ms) => ms % 60_000 == 0 ? $"{ms / 60_000} min" : ms % 1000 == 0 ? $"{ms / 1000} s" : $"{ms} ms";

    private static int? Option(IReadOnlyList<string> args, string name)
    {
        var i = args.ToList().IndexOf(name);
        return i >= 0 && i + 1 < args.Count ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : null;
    }

    /// <summary>Enqueues <paramref name="count"/> no-op jobs from 64 concurrent callers; returns (enqueue time, time until the last ran).</summary>
    private static async Task<(TimeSpan Enqueued, TimeSpan Completed)> RunJobsAsync(BackgroundJobClient client, int count)
    {
        var target = HangfireJobs.NoopCount + count;
        var sw = Stopwatch.StartNew();
        await Task.Run(() => Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = 64 }, _ => client.Enqueue(() => HangfireJobs.Noop())));
        var enqueued = sw.Elapsed;
        await Bench.WaitUntilAsync(() => HangfireJobs.NoopCount >= target, TimeSpan.FromMinutes(5), "Hangfire jobs");
        return (enqueued, sw.Elapsed);
    }

    /// <summary>
    /// A chain of continuations: the first job is created scheduled an hour ahead, the others are attached with
    /// ContinueJobWith, then the first is moved to Enqueued (the start). Returns (start, entry and exit timestamps).
    /// </summary>
    private static async Task<(long Start, long[] Enter, long[] Exit)> RunChainAsync(BackgroundJobClient client, int length)
    {
        HangfireJobs.ResetChain(length);
        var first = client.Create(() => HangfireJobs.Mark(0), new ScheduledState(TimeSpan.FromHours(1)));
        var previous = first;
        for (var i = 1; i < length; i++)
        {
            var index = i;
            previous = client.ContinueJobWith(previous, () => HangfireJobs.Mark(index));
        }

        var start = Stopwatch.GetTimestamp();
        if (!client.ChangeState(first, new EnqueuedState(), ScheduledState.StateName))
        {
            throw new InvalidOperationException("The chain's first job could not be enqueued.");
        }

        await HangfireJobs.ChainDone.Task.WaitAsync(TimeSpan.FromMinutes(2));
        return (start, HangfireJobs.Enter, HangfireJobs.Exit);
    }

    /// <summary>Fan-out of no-op leaves enqueued from 64 concurrent callers; the last leaf to finish enqueues the join. Start → the join's exit.</summary>
    private static async Task<TimeSpan> RunFanAsync(BackgroundJobClient client, int width)
    {
        HangfireJobs.ResetFan(width);
        var start = Stopwatch.GetTimestamp();
        await Task.Run(() => Parallel.For(0, width, new ParallelOptions { MaxDegreeOfParallelism = 64 }, _ => client.Enqueue(() => HangfireJobs.FanLeaf())));
        var joinExit = await HangfireJobs.JoinDone.Task.WaitAsync(TimeSpan.FromMinutes(2));
        return Stopwatch.GetElapsedTime(start, joinExit);
    }
}

/// <summary>The job methods Hangfire invokes (public static: Hangfire serializes the call and resolves it by name).</summary>
public static class HangfireJobs
{
    private static long _noops;
    private static int _fanRemaining;

    internal static BackgroundJobClient? Client { get; set; }

    internal static long NoopCount => Interlocked.Read(ref _noops);

    internal static long[] Enter { get; private set; } = [];

    internal static long[] Exit { get; private set; } = [];

    internal static TaskCompletionSource ChainDone { get; private set; } = new();

    internal static TaskCompletionSource<long> JoinDone { get; private set; } = new();

    public static void Noop() => Interlocked.Increment(ref _noops);

    public static void Mark(int index)
    {
        var enter = Stopwatch.GetTimestamp();
        Enter[index] = enter;
        Exit[index] = Stopwatch.GetTimestamp();
        if (index == Exit.Length - 1)
        {
            ChainDone.TrySetResult();
        }
    }

    public static void FanLeaf()
    {
        if (Interlocked.Decrement(ref _fanRemaining) == 0)
        {
            Client!.Enqueue(() => FanJoin());
        }
    }

    public static void FanJoin() => JoinDone.TrySetResult(Stopwatch.GetTimestamp());

    internal static void ResetChain(int length)
    {
        Enter = new long[length];
        Exit = new long[length];
        ChainDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    internal static void ResetFan(int width)
    {
        _fanRemaining = width;
        JoinDone = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
