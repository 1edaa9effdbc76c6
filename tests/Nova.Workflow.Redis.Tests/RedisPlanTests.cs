using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Nova.Workflow.Storage;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// On one server a plan's static fields live once, in a hash named by their fingerprint, and an execution's node hash
/// holds only the state its nodes have reached.
/// </summary>
public sealed class RedisPlanTests(RedisServer server) : IClassFixture<RedisServer>
{
    private static readonly WorkflowDefinition TwoSteps = new WorkflowBuilder("plan").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build();

    [Fact]
    public async Task Executions_of_one_plan_share_its_hash_and_a_lost_plan_hash_is_stored_again()
    {
        var prefix = "plan" + Guid.NewGuid().ToString("N")[..6];
        using var host = await StartAsync(prefix, TwoSteps);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var db = server.Connection.GetDatabase();
        var keys = new RedisKeys(prefix);

        var first = await client.RunAsync("plan", timeout: TimeSpan.FromSeconds(20));
        var second = await client.RunAsync("plan", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(ExecutionStatus.Succeeded, first.Status);
        Assert.Equal(ExecutionStatus.Succeeded, second.Status);
        var planKey = Assert.Single(PlanKeys(prefix));
        Assert.Equal(planKey, (string?)await db.HashGetAsync(keys.Execution(second.Id)[0], "p"));
        Assert.Equal("a", (string?)await db.HashGetAsync(planKey, "id0"));

        // The node hash holds state only: no id, handler, edges or id map. A node's state is one record, named by its index.
        var nodeFields = (await db.HashKeysAsync(keys.Execution(second.Id)[1])).Select(f => (string)f!).ToList();
        Assert.Contains("1", nodeFields);
        Assert.StartsWith("3|1|0|", (string?)await db.HashGetAsync(keys.Execution(second.Id)[1], "1"), StringComparison.Ordinal);
        Assert.DoesNotContain(nodeFields, f => f.StartsWith("id", StringComparison.Ordinal) || f.StartsWith("n2i:", StringComparison.Ordinal) || f.StartsWith("ch", StringComparison.Ordinal));
        Assert.Equal(["a", "b"], (await client.GetAsync(second.Id))!.Nodes.Select(n => n.Id));

        // A flushed server: this process believes the plan is stored; the create is told otherwise and sends it.
        Assert.True(await db.KeyDeleteAsync(planKey));
        var third = await client.RunAsync("plan", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(ExecutionStatus.Succeeded, third.Status);
        Assert.Equal(planKey, Assert.Single(PlanKeys(prefix)));
        await host.StopAsync();
    }

    [Fact]
    public async Task A_plan_read_while_its_hash_is_lost_is_read_again_once_it_is_stored()
    {
        // The library keeps plan fields from call to call; it must not keep "absent" for a plan hash that is merely missing.
        var prefix = "plan" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(TwoSteps), withWorker: false);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var store = host.Services.GetRequiredService<IStateStore>();
        var queue = host.Services.GetRequiredService<IJobQueue>();
        await client.StartAsync("plan");
        var job = Assert.Single(await queue.DequeueAsync(["default"], 5, TimeSpan.FromMinutes(1)));

        Assert.True(await server.Connection.GetDatabase().KeyDeleteAsync(Assert.Single(PlanKeys(prefix))));
        Assert.NotEqual(StartOutcome.Started, (await store.TryStartNodeAsync(new StartNodeRequest(job, "w1", TimeSpan.FromMinutes(1), 3))).Outcome);

        // A create stores the plan again; the node now starts.
        await client.StartAsync("plan");
        Assert.Equal(StartOutcome.Started, (await store.TryStartNodeAsync(new StartNodeRequest(job, "w1", TimeSpan.FromMinutes(1), 3))).Outcome);
    }

    [Fact]
    public async Task A_changed_plan_under_the_same_name_gets_its_own_hash_and_earlier_executions_keep_their_nodes()
    {
        var prefix = "plan" + Guid.NewGuid().ToString("N")[..6];
        Guid earlier;
        using (var before = await StartAsync(prefix, TwoSteps))
        {
            earlier = (await before.Services.GetRequiredService<IWorkflowClient>().RunAsync("plan", timeout: TimeSpan.FromSeconds(20))).Id;
            await before.StopAsync();
        }

        // The same name and version, deployed with as many nodes under other ids.
        var changed = new WorkflowBuilder("plan").Node("x", "h").Node("y", "h", n => n.DependsOn("x")).Build();
        using var after = await StartAsync(prefix, changed);
        var client = after.Services.GetRequiredService<IWorkflowClient>();
        var later = await client.RunAsync("plan", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(ExecutionStatus.Succeeded, later.Status);
        Assert.Equal(2, PlanKeys(prefix).Count);

        // Each snapshot names the nodes of the plan its execution ran, whatever this process registered.
        Assert.Equal(["a", "b"], (await client.GetAsync(earlier))!.Nodes.Select(n => n.Id));
        Assert.Equal(["x", "y"], (await client.GetAsync(later.Id))!.Nodes.Select(n => n.Id));
        await after.StopAsync();
    }

    [Fact]
    public async Task Large_plans_and_their_node_hashes_are_hash_tables_from_the_start_and_small_ones_end_compact()
    {
        // A flat list is scanned on every read: a 50-node plan (about 500 fields) would stay one under the usual limits.
        var wide = new WorkflowBuilder("plan").Node("n0", "h");
        for (var i = 1; i < 50; i++)
        {
            var parent = $"n{i - 1}";
            wide.Node($"n{i}", "h", n => n.DependsOn(parent));
        }

        var prefix = "plan" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .Configure(o => o.WorkerId = "web-7d9f8b6c5-x2k4p:1:abcdef")
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(wide.Build())
            .AddWorkflow(new WorkflowBuilder("small").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var db = server.Connection.GetDatabase();
        var keys = new RedisKeys(prefix);

        var large = await client.RunAsync("plan", timeout: TimeSpan.FromSeconds(20));
        var small = await client.RunAsync("small", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(ExecutionStatus.Succeeded, large.Status);
        Assert.Equal(ExecutionStatus.Succeeded, small.Status);
        var largePlan = (string)(await db.HashGetAsync(keys.Execution(large.Id)[0], "p"))!;
        var smallPlan = (string)(await db.HashGetAsync(keys.Execution(small.Id)[0], "p"))!;
        Assert.Equal("hashtable", await db.KeyEncodingAsync(largePlan));
        Assert.Equal("hashtable", await db.KeyEncodingAsync(keys.Execution(large.Id)[1]));
        Assert.Equal("listpack", await db.KeyEncodingAsync(smallPlan));
        // A running node's record (lease token, times, worker) is too long for a compact list; a small execution's node
        // hash is written compact again once it has finished (here with a worker id as long as a Kubernetes pod's).
        Assert.Equal("listpack", await db.KeyEncodingAsync(keys.Execution(small.Id)[1]));
        Assert.Equal("3|1|0|||", ((string?)await db.HashGetAsync(keys.Execution(small.Id)[1], "1"))![..8]);
        Assert.Equal(50, (await client.GetAsync(large.Id))!.Nodes.Count);
        await host.StopAsync();
    }

    private List<string> PlanKeys(string prefix) =>
        [.. server.Connection.GetServer(server.Connection.GetEndPoints()[0]).Keys(pattern: prefix + ":plan:*").Select(k => (string)k!)];

    private Task<IHost> StartAsync(string prefix, WorkflowDefinition workflow) =>
        RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(workflow));
}
