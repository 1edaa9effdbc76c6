using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// Large executions are kept in memory by the process that wrote them last and read again when another wrote since:
/// two hosts take turns on one, and a pause and resume from a third (the single-row path) move it on in between.
/// </summary>
public sealed class PostgresLargeExecutionTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    private const int Width = 800;

    [Fact]
    public async Task Two_hosts_running_one_large_execution_with_a_pause_in_between_run_every_node_exactly_once()
    {
        var schema = "big" + Guid.NewGuid().ToString("N")[..8];
        var runs = new ConcurrentDictionary<string, int>();
        var pauseAt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var first = await StartHostAsync(schema, runs, pauseAt, workers: true);
        using var second = await StartHostAsync(schema, runs, pauseAt, workers: true);
        using var control = await StartHostAsync(schema, runs, pauseAt, workers: false);
        var client = control.Services.GetRequiredService<IWorkflowClient>();

        var id = await client.StartAsync("wide");
        await pauseAt.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await client.PauseAsync(id);
        await client.ResumeAsync(id);
        var result = await client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(60));

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal(Width, runs.Count);
        Assert.All(runs, r => Assert.Equal(1, r.Value));
        var snapshot = await client.GetAsync(id);
        Assert.All(snapshot.Nodes, n => Assert.Equal(NodeStatus.Succeeded, n.Status));
        var history = await client.GetHistoryAsync(id);
        Assert.Equal(Width, history.Count(r => r.Status == NodeRunStatus.Succeeded));
        await Task.WhenAll(first.StopAsync(), second.StopAsync(), control.StopAsync());
    }

    private Task<IHost> StartHostAsync(string schema, ConcurrentDictionary<string, int> runs, TaskCompletionSource pauseAt, bool workers)
    {
        return PostgresTestHost.StartAsync(server.DataSource, o => o.Schema = schema, nova =>
        {
            nova.AddHandler("count", (ctx, _) =>
            {
                // At least, not exactly: handlers of both hosts add at once, so two adds can pass the count between reads.
                if (runs.AddOrUpdate(ctx.NodeId, 1, (_, n) => n + 1) == 1 && runs.Count >= Width / 3)
                {
                    pauseAt.TrySetResult();
                }

                return ValueTask.FromResult<JsonElement?>(null);
            });
            var wide = new WorkflowBuilder("wide");
            for (var i = 0; i < Width; i++)
            {
                wide.Node($"w{i}", "count");
            }

            nova.AddWorkflow(wide.Build());
            if (workers)
            {
                nova.AddWorker(w => w.Queue("default", 16));
            }
        });
    }
}
