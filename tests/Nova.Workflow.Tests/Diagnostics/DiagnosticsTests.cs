using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace Nova.Workflow.Tests.Diagnostics;

[Collection("diagnostics")]
public sealed class DiagnosticsTests
{
    [Fact]
    public async Task Each_node_run_is_a_span_linked_to_the_start_and_counted_on_the_meter()
    {
        var activities = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Nova.Workflow",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var measurements = new ConcurrentDictionary<string, double>();
        using var meter = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Nova.Workflow")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        meter.SetMeasurementEventCallback<long>((i, v, _, _) => measurements.AddOrUpdate(i.Name, v, (_, o) => o + v));
        meter.SetMeasurementEventCallback<double>((i, v, _, _) => measurements.AddOrUpdate(i.Name, 1, (_, o) => o + 1));
        meter.Start();

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging();
        builder.Services.AddNovaWorkflows(nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("traced").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build())
            .AddWorkflow(new WorkflowBuilder("metered").Node("x", "h").Build())
            .AddWorker());
        using var host = builder.Build();
        await host.StartAsync();
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var result = await client.RunAsync("traced", timeout: TimeSpan.FromSeconds(20));
        await host.StopAsync();

        var start = Assert.Single(activities, a => a.OperationName == "nova.workflow.start" && (string?)a.GetTagItem("nova.execution_id") == result.Id.ToString());
        var nodes = activities.Where(a => a.OperationName == "nova.workflow.node" && (string?)a.GetTagItem("nova.execution_id") == result.Id.ToString()).ToList();
        Assert.Equal(2, nodes.Count);
        Assert.All(nodes, n => Assert.Equal(start.TraceId, n.TraceId));
        var a = nodes.Single(n => (string?)n.GetTagItem("nova.node_id") == "a");
        var b = nodes.Single(n => (string?)n.GetTagItem("nova.node_id") == "b");
        Assert.Equal(start.SpanId, a.ParentSpanId);
        Assert.Equal(a.SpanId, b.ParentSpanId);

        Assert.True(measurements.GetValueOrDefault("nova.workflow.nodes.started") >= 2);
        Assert.True(measurements.GetValueOrDefault("nova.workflow.nodes.succeeded") >= 2);
        Assert.True(measurements.GetValueOrDefault("nova.workflow.node.duration") >= 2);
    }
}
