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
