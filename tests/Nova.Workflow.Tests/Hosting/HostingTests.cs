using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Tests.Hosting;

public sealed class HostingTests
{
    private static IHost Build(Action<NovaWorkflowBuilder> configure)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging();
        configure(builder.Services.AddNovaWorkflows());
        return builder.Build();
    }

    [Fact]
    public async Task Options_are_validated_at_start()
    {
        using var host = Build(nova => nova.Configure(o =>
        {
            o.LeaseDuration = TimeSpan.FromSeconds(5);
            o.HeartbeatInterval = TimeSpan.FromSeconds(4);
            o.MaxWorkerLosses = 0;
        }));
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("3 × HeartbeatInterval", ex.Message);
        Assert.Contains("MaxWorkerLosses", ex.Message);
    }

    [Fact]
    public async Task Shutdown_during_a_claim_returns_the_claims_slots_and_completes()
    {
        var queue = new ClaimBlockingQueue();
        using var host = Build(nova => nova
            .UseStorage(sp => new Nova.Workflow.Storage.InMemory.InMemoryStateStore(TimeProvider.System, queue), _ => queue)
            .AddWorker(w => w.Queue("default", 4)));
        await host.StartAsync();
        await queue.Claiming.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var stop = host.StopAsync();
        Assert.Same(stop, await Task.WhenAny(stop, Task.Delay(TimeSpan.FromSeconds(20))));
        await stop;
    }

    /// <summary>A queue whose claim waits until it is cancelled, as a claim in flight at shutdown does.</summary>
    private sealed class ClaimBlockingQueue : IJobQueue
    {
        private readonly Nova.Workflow.Storage.InMemory.InMemoryJobQueue _inner = new(TimeProvider.System);

        public TaskCompletionSource Claiming { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async ValueTask<IReadOnlyList<LeasedJob>> DequeueAsync(IReadOnlyList<string> queues, int maxCount, TimeSpan lease, CancellationToken cancellationToken = default)
        {
            Claiming.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return [];
        }

        public ValueTask EnqueueAsync(IReadOnlyList<Job> jobs, CancellationToken cancellationToken = default) => _inner.EnqueueAsync(jobs, cancellationToken);
        public ValueTask WaitAsync(IReadOnlyList<string> queues, TimeSpan timeout, CancellationToken cancellationToken = default) => _inner.WaitAsync(queues, timeout, cancellationToken);
        public ValueTask<IReadOnlyList<bool>> ExtendLeasesAsync(IReadOnlyList<LeasedJob> jobs, TimeSpan lease, CancellationToken cancellationToken = default) => _inner.ExtendLeasesAsync(jobs, lease, cancellationToken);
        public ValueTask<bool> AckAsync(LeasedJob job, CancellationToken cancellationToken = default) => _inner.AckAsync(job, cancellationToken);
        public ValueTask<bool> ReleaseAsync(LeasedJob job, TimeSpan delay, CancellationToken cancellationToken = default) => _inner.ReleaseAsync(job, delay, cancellationToken);
        public ValueTask DeadLetterAsync(DeadLetter entry, LeasedJob? job, CancellationToken cancellationToken = default) => _inner.DeadLetterAsync(entry, job, cancellationToken);
        public ValueTask<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(int max, CancellationToken cancellationToken = default) => _inner.ListDeadLettersAsync(max, cancellationToken);
        public ValueTask<DeadLetter?> TakeDeadLetterAsync(Guid id, CancellationToken cancellationToken = default) => _inner.TakeDeadLetterAsync(id, cancellationToken);
        public ValueTask<long> GetDepthAsync(string queue, CancellationToken cancellationToken = default) => _inner.GetDepthAsync(queue, cancellationToken);
    }

    [Fact]
    public async Task A_host_without_workers_enqueues_and_runs_nothing()
    {
        using var host = Build(nova => nova
            .AddHandler("h", (_, _) => throw new InvalidOperationException("must not run here"))
            .AddWorkflow(new WorkflowBuilder("web").Node("a", "h").Build()));
        await host.StartAsync();
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var id = await client.StartAsync("web");
        Assert.Equal(1, await host.Services.GetRequiredService<IJobQueue>().GetDepthAsync("default"));
        Assert.Equal(NodeStatus.Queued, (await client.GetAsync(id)).Nodes[0].Status);
        Assert.DoesNotContain(host.Services.GetServices<IHostedService>(), s => s.GetType().Name == "WorkerService");
        await host.StopAsync();
    }

    [Fact]
    public void Registration_is_safe_to_call_twice()
    {
        var services = new ServiceCollection();
        services.AddNovaWorkflows();
        var count = services.Count;
        services.AddNovaWorkflows();
        Assert.Equal(count, services.Count);
        Assert.Single(services, d => d.ServiceType == typeof(IWorkflowClient));
    }

    [Fact]
    public async Task Several_versions_can_be_registered_and_the_highest_starts_by_default()
    {
        using var host = Build(nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("v").Version(1).Node("one", "h").Build())
            .AddWorkflow(new WorkflowBuilder("v").Version(2).Node("two", "h").Build()));
        await host.StartAsync();
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        Assert.Equal(2, (await client.GetAsync(await client.StartAsync("v"))).Version);
        var pinned = await client.GetAsync(await client.StartAsync("v", options: new StartOptions { Version = 1 }));
        Assert.Equal("one", pinned.Nodes.Single().Id);
        await host.StopAsync();
    }
}
