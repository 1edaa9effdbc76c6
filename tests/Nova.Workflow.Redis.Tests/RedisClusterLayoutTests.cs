using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

public sealed class RedisClusterLayoutTests(RedisCluster cluster) : IClassFixture<RedisCluster>
{
    [Fact]
    public async Task Executions_spread_over_the_masters_and_each_execution_stays_in_one_slot()
    {
        Assert.Equal(3, cluster.Connection.GetEndPoints().Length);
        Assert.All(cluster.Connection.GetEndPoints(), e => Assert.Equal(ServerType.Cluster, cluster.Connection.GetServer(e).ServerType));

        var prefix = "layout" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(cluster.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("spread").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var ids = new List<Guid>();
        for (var i = 0; i < 12; i++)
        {
            ids.Add((await client.RunAsync("spread", timeout: TimeSpan.FromSeconds(20))).Id);
        }

        await host.StopAsync();
        var keys = new RedisKeys(prefix);
        var masters = new HashSet<string>();
        foreach (var id in ids)
        {
            var slots = keys.Execution(id).Select(k => cluster.Connection.HashSlot(k)).Distinct().ToList();
            Assert.Single(slots);
            Assert.True(await cluster.Connection.GetDatabase().KeyExistsAsync(keys.Execution(id)[0]));
            var config = cluster.Connection.GetServer(cluster.Connection.GetEndPoints()[0]).ClusterConfiguration!;
            masters.Add(config.GetBySlot(slots[0])!.EndPoint!.ToString()!);
        }

        Assert.True(masters.Count > 1, "twelve executions all landed on one master");
    }
}
