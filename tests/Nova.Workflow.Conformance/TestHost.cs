using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Nova.Workflow.Execution;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Conformance;

/// <summary>A started host with Nova.Workflow, as a test sees it.</summary>
public sealed class TestHost : IAsyncDisposable
{
    internal TestHost(IHost host)
    {
        Host = host;
        Client = host.Services.GetRequiredService<IWorkflowClient>();
        Store = host.Services.GetRequiredService<IStateStore>();
        Queue = host.Services.GetRequiredService<IJobQueue>();
    }

    /// <summary>The host.</summary>
    public IHost Host { get; }

    /// <summary>The client.</summary>
    public IWorkflowClient Client { get; }

    /// <summary>The state store.</summary>
    public IStateStore Store { get; }

    /// <summary>The job queue.</summary>
    public IJobQueue Queue { get; }

    internal NodeRunner Runner => Host.Services.GetRequiredService<NodeRunner>();

    internal MaintenanceService? Maintenance => Host.Services.GetServices<IHostedService>().OfType<MaintenanceService>().FirstOrDefault();

    /// <summary>Stops the host (graceful shutdown) and disposes it.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await Host.StopAsync(cts.Token);
        }
        catch (ObjectDisposedException)
        {
            // Already stopped.
        }

        Host.Dispose();
    }

    internal static async Task<TestHost> StartAsync(IStorageHandle storage, Action<NovaWorkflowBuilder> configure, Action<NovaWorkflowOptions>? options, Action<WorkerOptions>? worker, bool withWorker)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        var nova = builder.Services.AddNovaWorkflows();
        storage.Configure(nova);
        nova.Configure(o =>
        {
            o.LeaseDuration = TimeSpan.FromSeconds(2);
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(400);
            o.PollInterval = TimeSpan.FromMilliseconds(100);
            o.SweepInterval = TimeSpan.FromMilliseconds(300);
            o.StrandedAfter = TimeSpan.FromSeconds(1);
            options?.Invoke(o);
        });
        configure(nova);
        if (withWorker)
        {
            nova.AddWorker(w =>
            {
                if (worker is null)
                {
                    w.Queue(WorkflowDefinition.DefaultQueue, 8);
                }
                else
                {
                    worker(w);
                }
            });
        }

        var host = builder.Build();
        await host.StartAsync();
        return new TestHost(host);
    }
}
