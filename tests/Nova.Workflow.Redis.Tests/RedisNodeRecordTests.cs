using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// A node's state is one record in the node hash, "status|attempt|losses|readyAt|token|startedAt|leaseEnds|endedAt|worker";
/// the snapshot reads it back.
/// </summary>
public sealed class RedisNodeRecordTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Theory]
    [InlineData("3|2|0|1000||2000|3000|4000|host:1", NodeStatus.Succeeded, 2, 2000L, 4000L, "host:1")]
    [InlineData("2|1|1|1000|ab12|2000|3000||a|b|c", NodeStatus.Running, 1, 2000L, 0L, "a|b|c")]
    [InlineData("1|1|0|1000|||||", NodeStatus.Queued, 1, 0L, 0L, "")]
    [InlineData("", NodeStatus.Pending, 0, 0L, 0L, "")]
    [InlineData("3|2|0|1000", NodeStatus.Pending, 0, 0L, 0L, "")]
    [InlineData("x|2|0|1000||2000|3000|4000|w", NodeStatus.Pending, 0, 0L, 0L, "")]
    public void A_record_reads_as_its_parts_and_one_that_does_not_parse_as_a_node_never_run(
        string record, NodeStatus status, int attempt, long startedMs, long endedMs, string worker)
    {
        var read = NodeRecord.Parse(Encoding.UTF8.GetBytes(record), out var a, out var started, out var ended, out var w);

        Assert.Equal(status, read);
        Assert.Equal(attempt, a);
        Assert.Equal(startedMs == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(startedMs), started);
        Assert.Equal(endedMs == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(endedMs), ended);
        Assert.Equal(worker, Encoding.UTF8.GetString(w));
    }

    [Fact]
    public async Task A_worker_id_with_the_records_separator_in_it_reads_back_whole()
    {
        var prefix = "rec" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .Configure(o => o.WorkerId = "rack|7|worker")
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(JsonDocument.Parse("{\"k\":\"a|b\"}").RootElement))
            .AddWorkflow(new WorkflowBuilder("rec").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();

        var run = await client.RunAsync("rec", timeout: TimeSpan.FromSeconds(20));

        Assert.All(run.Nodes, n =>
        {
            Assert.Equal(NodeStatus.Succeeded, n.Status);
            Assert.Equal(1, n.Attempt);
            Assert.Equal("rack|7|worker", n.WorkerId);
            Assert.NotNull(n.StartedAt);
            Assert.True(n.EndedAt >= n.StartedAt);
            Assert.Equal("a|b", n.Output!.Value.GetProperty("k").GetString());
        });
        await host.StopAsync();
    }
}
