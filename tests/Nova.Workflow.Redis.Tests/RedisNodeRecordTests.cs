using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Nova.Workflow.Storage;
using StackExchange.Redis;
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
    [InlineData("3|1|0|||2000||+35|w1", NodeStatus.Succeeded, 1, 2000L, 2035L, "w1")]
    [InlineData("5|0|0|||||+5|", NodeStatus.Skipped, 0, 0L, 0L, "")]
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

    // What an earlier build kept: each part of a node's state in a field of its own, and no format mark on the execution.
    private const string ToEarlierFormat = """
        local parts = { 's', 'a', 'l', 'ra', 't', 'sa', 'le', 'ea', 'w' }
        local all = redis.call('HGETALL', KEYS[2])
        for k = 1, #all, 2 do
          local field = all[k]
          if string.match(field, '^%d+$') then
            local values = { string.match(all[k + 1], '^(%d)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$') }
            for p = 1, #parts do
              if values[p] ~= '' then redis.call('HSET', KEYS[2], parts[p] .. field, values[p]) end
            end
            redis.call('HDEL', KEYS[2], field)
          end
        end
        return redis.call('HDEL', KEYS[1], 'nf')
        """;

    [Fact]
    public async Task An_execution_an_earlier_build_wrote_is_read_as_it_is_and_made_records_when_this_build_runs_it()
    {
        var prefix = "rec" + Guid.NewGuid().ToString("N")[..6];
        var flow = new WorkflowBuilder("legacy").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build();
        void Configure(NovaWorkflowBuilder nova) => nova.AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null)).AddWorkflow(flow);
        var db = server.Connection.GetDatabase();
        Guid id;
        using (var writer = await RedisTestHost.StartAsync(server.Connection, prefix, Configure, withWorker: false))
        {
            id = await writer.Services.GetRequiredService<IWorkflowClient>().StartAsync("legacy");
            await writer.StopAsync();
        }

        var keys = new RedisKeys(prefix).Execution(id);
        Assert.Equal(1, (int)await db.ScriptEvaluateAsync(ToEarlierFormat, [keys[0], keys[1]]));
        Assert.True(await db.HashExistsAsync(keys[1], "s0"));

        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, Configure, withWorker: false);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        // A snapshot only reads: it reads the earlier fields as they are.
        var before = await client.GetAsync(id);
        Assert.Equal([(NodeStatus.Queued, 1), (NodeStatus.Pending, 0)], before.Nodes.Select(n => (n.Status, n.Attempt)));
        Assert.False(await db.HashExistsAsync(keys[1], "0"));

        using var worker = await RedisTestHost.StartAsync(server.Connection, prefix, Configure);
        var after = await client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(20));

        Assert.Equal(ExecutionStatus.Succeeded, after.Status);
        Assert.All(after.Nodes, n => Assert.Equal((NodeStatus.Succeeded, 1), (n.Status, n.Attempt)));
        Assert.Equal("2", (string?)await db.HashGetAsync(keys[0], "nf"));
        var fields = (await db.HashKeysAsync(keys[1])).Select(f => (string)f!).ToList();
        Assert.Contains("0", fields);
        Assert.DoesNotContain(fields, f => f.StartsWith('s') || f.StartsWith("sa", StringComparison.Ordinal) || f.StartsWith('a'));
        await worker.StopAsync();
        await host.StopAsync();
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
