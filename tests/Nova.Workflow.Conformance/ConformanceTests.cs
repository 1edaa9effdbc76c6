using System.Text.Json;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Conformance;

/// <summary>
/// The provider conformance suite: every invariant of the design (DESIGN §3) and every durable
/// semantic, written once. A provider's test project derives from it and supplies fresh storage;
/// the in-memory, Redis and PostgreSQL providers all run it unchanged.
/// </summary>
public abstract partial class ConformanceTests : IAsyncLifetime
{
    private readonly List<TestHost> _hosts = [];
    private IStorageHandle? _storage;

    /// <summary>Creates one isolated storage instance for a test.</summary>
    protected abstract ValueTask<IStorageHandle> CreateStorageAsync();

    /// <summary>The storage of the current test.</summary>
    protected IStorageHandle Storage => _storage ?? throw new InvalidOperationException("InitializeAsync has not run.");

    /// <inheritdoc />
    public async Task InitializeAsync() => _storage = await CreateStorageAsync();

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.DisposeAsync();
        }

        if (_storage is not null)
        {
            await _storage.DisposeAsync();
        }
    }

    /// <summary>Starts a host on this test's storage, with a worker serving "default" unless <paramref name="withWorker"/> is false.</summary>
    protected async Task<TestHost> StartAsync(
        Action<NovaWorkflowBuilder> configure,
        Action<NovaWorkflowOptions>? options = null,
        Action<WorkerOptions>? worker = null,
        bool withWorker = true)
    {
        var host = await TestHost.StartAsync(Storage, configure, options, worker, withWorker);
        _hosts.Add(host);
        return host;
    }

    /// <summary>Starts a host whose workflows use one probe handler named "probe".</summary>
    protected Task<TestHost> StartAsync(Probe probe, WorkflowDefinition definition, Action<NovaWorkflowOptions>? options = null, Action<WorkerOptions>? worker = null, bool withWorker = true) =>
        StartAsync(nova => nova.AddHandler("probe", probe.Handle).AddWorkflow(definition), options, worker, withWorker);

    /// <summary>A workflow of probe nodes.</summary>
    protected static WorkflowBuilder Flow(string name) => new(name);

    /// <summary>Waits for the execution to finish (20 s at most).</summary>
    protected static Task<ExecutionSnapshot> Finished(TestHost host, Guid id) =>
        host.Client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(20));

    /// <summary>Polls until the node reaches <paramref name="status"/>.</summary>
    protected static Task NodeReaches(TestHost host, Guid id, string node, NodeStatus status) =>
        Eventually.TrueAsync(async () => (await host.Client.GetAsync(id)).Nodes.Single(n => n.Id == node).Status == status, $"{node} to be {status}");

    /// <summary>Polls until the execution reaches <paramref name="status"/>.</summary>
    protected static Task ExecutionReaches(TestHost host, Guid id, ExecutionStatus status) =>
        Eventually.TrueAsync(async () => (await host.Client.GetAsync(id)).Status == status, $"execution to be {status}");

    /// <summary>The status of one node.</summary>
    protected static NodeStatus StatusOf(ExecutionSnapshot snapshot, string node) => snapshot.Nodes.Single(n => n.Id == node).Status;

    /// <summary>Leases the next job of the default queue directly (a hand-driven "worker").</summary>
    protected static async Task<LeasedJob> LeaseNextAsync(IJobQueue queue, TimeSpan lease, string queueName = WorkflowDefinition.DefaultQueue)
    {
        LeasedJob? job = null;
        await Eventually.TrueAsync(
            async () => (job = (await queue.DequeueAsync([queueName], 1, lease)).FirstOrDefault()) is not null,
            "a job to lease");
        return job!;
    }

    /// <summary>An output of <paramref name="value"/>.</summary>
    protected static JsonElement Json(object value) => JsonSerializer.SerializeToElement(value);
}
