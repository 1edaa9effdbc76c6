using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Nova.Workflow.Benchmarks;

/// <summary>
/// The in-memory engine end to end with no-op handlers: a 1,000-node chain (every node waits for the
/// one before: pure per-hop overhead) and a 1,000-wide fan-out joined by one node. Divide the time per
/// operation by 1,000 for the per-node overhead.
/// </summary>
[MemoryDiagnoser]
public class EngineBenchmarks
{
    private IHost _host = null!;
    private IWorkflowClient _client = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        var chain = new WorkflowBuilder("chain");
        chain.Node("n0", "noop");
        for (var i = 1; i < 1000; i++)
        {
            var parent = $"n{i - 1}";
            chain.Node($"n{i}", "noop", n => n.DependsOn(parent));
        }

        var fan = new WorkflowBuilder("fan");
        var leaves = Enumerable.Range(0, 1000).Select(i => $"f{i}").ToArray();
        foreach (var leaf in leaves)
        {
            fan.Node(leaf, "noop");
        }

        fan.Node("join", "noop", n => n.DependsOn(leaves));

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging();
        builder.Services.AddNovaWorkflows(nova => nova
            .AddHandler("noop", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(chain.Build())
            .AddWorkflow(fan.Build())
            .AddWorker(w => w.Queue("default", Environment.ProcessorCount * 4)));
        _host = builder.Build();
        await _host.StartAsync();
        _client = _host.Services.GetRequiredService<IWorkflowClient>();
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _host.StopAsync();
        _host.Dispose();
    }

    [Benchmark(OperationsPerInvoke = 1000)]
    public Task Chain1000() => _client.RunAsync("chain", timeout: TimeSpan.FromMinutes(1));

    [Benchmark(OperationsPerInvoke = 1001)]
    public Task FanOut1000() => _client.RunAsync("fan", timeout: TimeSpan.FromMinutes(1));
}
