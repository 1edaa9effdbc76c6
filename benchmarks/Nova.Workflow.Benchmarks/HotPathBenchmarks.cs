using System.Text.Json;
using BenchmarkDotNet.Attributes;
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
/// The state machine's scheduling step with no storage around it: one 10-node diamond DAG from start to its last
/// completion (10 starts, 10 completions with propagation), and the same with eager dispatch taking each next node.
/// </summary>
[MemoryDiagnoser]
public class SchedulingBenchmarks
{
    private static readonly ContinuationOffer Offer = new("bench", TimeSpan.FromSeconds(30), 3);
    private ExecutionPlan _plan = null!;
    private JsonElement _input;

    [GlobalSetup]
    public void Setup()
    {
        _plan = ExecutionPlan.Create(Workloads.TenNode());
        _input = JsonSerializer.SerializeToElement(1);
    }

    [Benchmark(OperationsPerInvoke = 10, Description = "scheduling step (start + complete) per node, 10-node DAG")]
    public int QueueEveryChild() => Run(eager: false);

    [Benchmark(OperationsPerInvoke = 10, Description = "scheduling step per node, eager dispatch")]
    public int EagerChildren() => Run(eager: true);

    private int Run(bool eager)
    {
        var now = DateTimeOffset.UnixEpoch;
        var state = new ExecutionState(new NewExecution(Guid.NewGuid(), _plan, _input, null, null), now);
        var ready = new Queue<Job>(state.Start(now).Jobs);
        var completed = 0;
        while (ready.Count > 0)
        {
            var leased = new LeasedJob(ready.Dequeue(), Guid.NewGuid(), 1, now);
            var start = state.TryStart(new StartNodeRequest(leased, "bench", TimeSpan.FromSeconds(30), 3), now, static (_, _) => TimeSpan.Zero);
            while (start.Outcome == StartOutcome.Started)
            {
                var request = new CompleteNodeRequest { Run = leased, Outcome = AttemptOutcome.Succeeded, FinalAttempt = 1, StartedAt = now, Continue = eager ? Offer : null };
                var result = state.Complete(request, now);
                var (transition, next) = state.TryContinue(request, result.Transition, now);
                completed++;
                foreach (var job in transition.Jobs)
                {
                    ready.Enqueue(job);
                }

                if (next is null)
                {
                    break;
                }

                (leased, start) = (next.Job, next.Start);
            }
        }

        return completed;
    }
}

/// <summary>Payload serialization on the hot path: a job (every enqueue and claim) and a 50-node execution document (every PostgreSQL transition).</summary>
[MemoryDiagnoser]
public class SerializationBenchmarks
{
    private Job _job = null!;
    private string _jobJson = null!;
    private ExecutionDocument _document = null!;
    private byte[] _documentBytes = null!;

    [GlobalSetup]
    public void Setup()
    {
        _job = new Job(Guid.NewGuid(), "extract-invoice-lines", 1, "default", 5, null, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        _jobJson = JobCodec.Serialize(_job);
        var plan = ExecutionPlan.Create(E2E.Bench.RandomLayeredDag("doc", 50, 5, 10, new Random(7), "noop"));
        var now = DateTimeOffset.UtcNow;
        var state = new ExecutionState(new NewExecution(Guid.NewGuid(), plan, JsonSerializer.SerializeToElement(new { invoice = 42 }), null, null), now);
        var ready = new Queue<Job>(state.Start(now).Jobs);
        // Half the nodes finished with a small output: a document in mid-run.
        for (var done = 0; done < 25 && ready.Count > 0; done++)
        {
            var leased = new LeasedJob(ready.Dequeue(), Guid.NewGuid(), 1, now);
            state.TryStart(new StartNodeRequest(leased, "worker-1", TimeSpan.FromSeconds(30), 3), now, static (_, _) => TimeSpan.Zero);
            var result = state.Complete(new CompleteNodeRequest { Run = leased, Outcome = AttemptOutcome.Succeeded, FinalAttempt = 1, StartedAt = now, Output = JsonSerializer.SerializeToElement(new { ok = true, n = done }) }, now);
            foreach (var job in result.Transition.Jobs)
            {
                ready.Enqueue(job);
            }
        }

        _document = state.ToDocument();
        _documentBytes = JsonSerializer.SerializeToUtf8Bytes(_document, ExecutionDocumentContext.Default.ExecutionDocument);
    }

    [Benchmark(Description = "job: serialize")]
    public string SerializeJob() => JobCodec.Serialize(_job);

    [Benchmark(Description = "job: parse")]
    public Job? ParseJob() => JobCodec.TryParse(_jobJson);

    [Benchmark(Description = "50-node execution document: serialize")]
    public byte[] SerializeDocument() => JsonSerializer.SerializeToUtf8Bytes(_document, ExecutionDocumentContext.Default.ExecutionDocument);

    [Benchmark(Description = "50-node execution document: parse")]
    public int ParseDocument() => JsonSerializer.Deserialize(_documentBytes, ExecutionDocumentContext.Default.ExecutionDocument)!.Done;
}

/// <summary>A store and queue of one provider, with no worker: the benchmark drives the transitions itself.</summary>
public abstract class StoreBenchmarks
{
    private readonly List<LeasedJob> _started = [];
    private IHost _host = null!;
    private IStateStore _store = null!;
    private ExecutionPlan _plan = null!;

    private protected IJobQueue Queue { get; private set; } = null!;

    private protected async Task StartStoreAsync(Action<NovaWorkflowBuilder> configure)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging(l => l.SetMinimumLevel(LogLevel.Error));
        var definition = new WorkflowBuilder("pair").Node("a", "noop").Node("b", "noop", n => n.DependsOn("a")).Build();
        builder.Services.AddNovaWorkflows(nova =>
        {
            configure(nova);
            nova.AddHandler("noop", (_, _) => ValueTask.FromResult<JsonElement?>(null));
            nova.AddWorkflow(definition);
        });
        _host = builder.Build();
        await _host.StartAsync();
        _store = _host.Services.GetRequiredService<IStateStore>();
        Queue = _host.Services.GetRequiredService<IJobQueue>();
        _plan = ExecutionPlan.Create(definition);
    }

    /// <summary>Creates <paramref name="count"/> two-node executions and leases and starts their first node.</summary>
    private protected async Task StartNodesAsync(int count)
    {
        _started.Clear();
        var input = JsonSerializer.SerializeToElement(1);
        for (var i = 0; i < count; i++)
        {
            var created = await _store.CreateExecutionAsync(new NewExecution(Guid.CreateVersion7(), _plan, input, null, null));
            if (!created.Transition.JobsEnqueued)
            {
                await Queue.EnqueueAsync(created.Transition.Jobs);
            }
        }

        while (_started.Count < count)
        {
            foreach (var job in await Queue.DequeueAsync([WorkflowDefinition.DefaultQueue], 64, TimeSpan.FromMinutes(5)))
            {
                var start = await _store.TryStartNodeAsync(new StartNodeRequest(job, "bench", TimeSpan.FromMinutes(5), 3));
                if (start.Outcome == StartOutcome.Started)
                {
                    _started.Add(job);
                }
            }
        }
    }

    /// <summary>Completes every started node, one completion after another.</summary>
    private protected async Task CompleteAllAsync()
    {
        foreach (var run in _started)
        {
            var result = await _store.CompleteNodeAsync(new CompleteNodeRequest { Run = run, Outcome = AttemptOutcome.Succeeded, FinalAttempt = 1, StartedAt = DateTimeOffset.UtcNow });
            if (!result.Accepted)
            {
                throw new InvalidOperationException("Completion rejected.");
            }
        }
    }

    private protected void StopStore() => _host.Dispose();
}

/// <summary>
/// Round trips against a real redis-server on 127.0.0.1: the completion script (complete, enqueue the child, ack: one
/// FCALL) of a started node whose child becomes ready; and one claim of a batch of 64.
/// </summary>
[MemoryDiagnoser]
public class RedisBenchmarks : StoreBenchmarks
{
    private const int Batch = 200;
    private LocalRedis _redis = null!;
    private IConnectionMultiplexer _connection = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _redis = LocalRedis.Start();
        _connection = await Servers.ConnectRedisAsync(_redis.ConnectionString);
        await StartStoreAsync(nova =>
        {
            nova.Services.AddSingleton(_connection);
            nova.UseRedis();
        });
    }

    [IterationSetup(Target = nameof(Complete))]
    public void StartNodes() => StartNodesAsync(Batch).GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = Batch, Description = "Redis: completion script round trip (complete + enqueue child + ack)")]
    public async Task Complete() => await CompleteAllAsync();

    [IterationSetup(Target = nameof(Claim64))]
    public void Fill() => Servers.FillAsync(Queue, 64 * 20).GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = 20, Description = "Redis: claim of 64 jobs")]
    public async Task Claim64() => await Servers.ClaimAsync(Queue, 20);

    [GlobalCleanup]
    public void Cleanup()
    {
        StopStore();
        _connection.Dispose();
        _redis.Dispose();
    }
}

/// <summary>
/// Statements against a real PostgreSQL (fsync on) on 127.0.0.1: the claim of 64 jobs with 100,000 queued, and the
/// completion transaction (lock, state write, history, child insert, ack, commit) of a started node.
/// </summary>
[MemoryDiagnoser]
public class PostgresBenchmarks : StoreBenchmarks
{
    private const int Batch = 100;
    private LocalPostgres _postgres = null!;
    private NpgsqlDataSource _dataSource = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _postgres = await LocalPostgres.StartAsync();
        _dataSource = await Servers.OpenPostgresAsync(_postgres.ConnectionString);
        await StartStoreAsync(nova =>
        {
            nova.Services.AddSingleton(_dataSource);
            nova.UsePostgres();
        });
        await Servers.FillAsync(Queue, 100_000, "backlog");
        await using var analyze = _dataSource.CreateCommand("ANALYZE nova.jobs");
        await analyze.ExecuteNonQueryAsync();
    }

    [IterationSetup(Target = nameof(Claim64))]
    public void ReleaseBacklog()
    {
        using var release = _dataSource.CreateCommand("UPDATE nova.jobs SET lease_token = NULL, lease_expires = NULL WHERE queue = 'backlog' AND lease_token IS NOT NULL");
        release.ExecuteNonQuery();
    }

    [Benchmark(OperationsPerInvoke = 20, Description = "PostgreSQL: claim of 64 jobs, 100,000 queued")]
    public async Task Claim64() => await Servers.ClaimAsync(Queue, 20, "backlog");

    [IterationSetup(Target = nameof(Complete))]
    public void StartNodes() => StartNodesAsync(Batch).GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = Batch, Description = "PostgreSQL: completion transaction (lock, write, history, child, ack, commit)")]
    public async Task Complete() => await CompleteAllAsync();

    [GlobalCleanup]
    public void Cleanup()
    {
        StopStore();
        _dataSource.Dispose();
        _postgres.Dispose();
    }
}

/// <summary>Server plumbing shared by the storage micro-benchmarks.</summary>
internal static class Servers
{
    /// <summary>
    /// Connects with the thread-pool socket manager (what <c>UseRedis(connectionString)</c> sets up; both engines of the
    /// end-to-end runner get it), retrying while a just-started server comes up.
    /// </summary>
    public static async Task<IConnectionMultiplexer> ConnectRedisAsync(string connectionString)
    {
        var options = ConfigurationOptions.Parse(connectionString);
        options.SocketManager = SocketManager.ThreadPool;
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await ConnectionMultiplexer.ConnectAsync(options);
            }
            catch (RedisConnectionException) when (attempt < 100)
            {
                await Task.Delay(100);
            }
        }
    }

    public static async Task<NpgsqlDataSource> OpenPostgresAsync(string connectionString)
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

    public static async Task FillAsync(IJobQueue queue, int count, string name = WorkflowDefinition.DefaultQueue)
    {
        var execution = Guid.CreateVersion7();
        for (var start = 0; start < count; start += 1000)
        {
            await queue.EnqueueAsync([.. Enumerable.Range(start, Math.Min(1000, count - start)).Select(i => new Job(execution, $"n{i}", 1, name, i % 10))]);
        }
    }

    public static async Task ClaimAsync(IJobQueue queue, int claims, string name = WorkflowDefinition.DefaultQueue)
    {
        for (var i = 0; i < claims; i++)
        {
            var claimed = await queue.DequeueAsync([name], 64, TimeSpan.FromMinutes(5));
            if (claimed.Count != 64)
            {
                throw new InvalidOperationException($"Claimed {claimed.Count} of 64.");
            }
        }
    }
}

/// <summary>Workflow shapes shared by the benchmarks.</summary>
internal static class Workloads
{
    /// <summary>A 10-node diamond-rich DAG (the shape of the sample report workflow).</summary>
    public static WorkflowDefinition TenNode(string name = "ten") => new WorkflowBuilder(name)
        .Node("n0", "noop")
        .Node("n1", "noop", n => n.DependsOn("n0")).Node("n2", "noop", n => n.DependsOn("n0")).Node("n3", "noop", n => n.DependsOn("n0"))
        .Node("n4", "noop", n => n.DependsOn("n1", "n2")).Node("n5", "noop", n => n.DependsOn("n2", "n3")).Node("n6", "noop", n => n.DependsOn("n3"))
        .Node("n7", "noop", n => n.DependsOn("n4")).Node("n8", "noop", n => n.DependsOn("n5", "n6"))
        .Node("n9", "noop", n => n.DependsOn("n7", "n8"))
        .Build();
}
