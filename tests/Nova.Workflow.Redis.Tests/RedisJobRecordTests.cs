using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nova.Workflow.Storage;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// A job the scripts enqueue is stored with a short payload ("~priority|index|s|traceparent"): its id names its execution,
/// node and attempt, and its queue is the one it is in. A job a caller enqueues keeps its JSON.
/// </summary>
public sealed class RedisJobRecordTests(RedisServer server) : IClassFixture<RedisServer>
{
    private const string Execution = "0123456789abcdef0123456789abcdef";

    [Fact]
    public void A_short_payload_reads_with_its_id_into_the_whole_job()
    {
        var job = RedisJobQueue.ParseShort("work", $"{Execution}:fetch:page:3", "~7|12|1|00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");

        Assert.NotNull(job);
        Assert.Equal(Guid.ParseExact(Execution, "N"), job.ExecutionId);
        // A node id may hold colons: the attempt is what follows the last one.
        Assert.Equal("fetch:page", job.NodeId);
        Assert.Equal(3, job.Attempt);
        Assert.Equal("work", job.Queue);
        Assert.Equal(7, job.Priority);
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", job.TraceParent);
        Assert.Null(RedisJobQueue.ParseShort("work", $"{Execution}:a:1", "~0|0|0|")!.TraceParent);
    }

    [Theory]
    [InlineData($"{Execution}:a:1", "~x|0|0|")]
    [InlineData($"{Execution}:a:1", "~|0|0|")]
    [InlineData($"{Execution}:a:1", "~1|0|0")]
    [InlineData($"{Execution}:a:1", "~1")]
    [InlineData($"{Execution}::1", "~1|0|0|")]
    [InlineData($"{Execution}:a:", "~1|0|0|")]
    [InlineData($"{Execution}:a:x", "~1|0|0|")]
    [InlineData($"{Execution}a", "~1|0|0|")]
    [InlineData("0123456789abcdef0123456789abcdeg:a:1", "~1|0|0|")]
    [InlineData("not-an-id", "~1|0|0|")]
    public void A_short_payload_or_id_that_does_not_read_is_no_job(string id, string payload) =>
        Assert.Null(RedisJobQueue.ParseShort("work", id, payload));

    [Fact]
    public async Task A_started_execution_queues_its_root_in_the_short_form_and_a_plain_dequeue_reads_it_whole()
    {
        var prefix = "rec" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("rooted").Node("root", "h", n => n.Priority(6)).Build()), withWorker: false);
        using var source = new ActivitySource("Nova.Workflow.Redis.Tests");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == source.Name || s.Name == "Nova.Workflow",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        ActivityTraceId trace;
        Guid id;
        using (var outer = source.StartActivity("caller")!)
        {
            trace = outer.TraceId;
            id = await client.StartAsync("rooted");
        }

        var queue = (RedisJobQueue)host.Services.GetRequiredService<IJobQueue>();
        var record = (string?)await server.Connection.GetDatabase().HashGetAsync(queue.KeysOf("default").Jobs, $"{id:N}:root:1");
        Assert.NotNull(record);
        // score|deliveries|token|payload: the root's node index is 0, and it has no parents and no rate limit.
        Assert.Matches(@"^\d+\|0\|\|~6\|0\|1\|00-", record);

        var leased = Assert.Single(await queue.DequeueAsync(["default"], 10, TimeSpan.FromMinutes(1)));
        Assert.Equal(new Job(id, "root", 1, "default", 6, null, leased.Job.TraceParent), leased.Job);
        Assert.Equal(trace, ActivityContext.Parse(leased.Job.TraceParent!, null).TraceId);
        // Short records alone would leave the hash a flat list that every access scans: the dequeue's mark makes it a table,
        // and stays when the last job is gone (a hash is deleted when empty, and would come back a flat list).
        Assert.True(await queue.AckAsync(leased));
        Assert.Equal("hashtable", (string?)await server.Connection.GetDatabase().ExecuteAsync("OBJECT", "ENCODING", (RedisKey)queue.KeysOf("default").Jobs));
    }

    [Fact]
    public async Task A_queue_keeps_its_ready_and_leased_sets_as_skip_lists_and_its_mark_never_stays_in_them()
    {
        var prefix = "zs" + Guid.NewGuid().ToString("N")[..6];
        var wide = new WorkflowBuilder("few");
        for (var i = 0; i < 5; i++)
        {
            wide.Node($"n{i}", "h");
        }

        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(wide.Build()), withWorker: false);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var queue = (RedisJobQueue)host.Services.GetRequiredService<IJobQueue>();
        var keys = queue.KeysOf("default");
        var db = server.Connection.GetDatabase();
        await client.StartAsync("few");

        // Five members would be a flat list, which every insert walks and every removal searches.
        Assert.Equal("skiplist", await db.KeyEncodingAsync(keys.Ready));
        Assert.Equal(5, await db.SortedSetLengthAsync(keys.Ready));
        var leased = await queue.DequeueAsync(["default"], 2, TimeSpan.FromMinutes(1));
        Assert.Equal(2, leased.Count);
        Assert.Equal("skiplist", await db.KeyEncodingAsync(keys.Leased));
        Assert.Equal(2, await db.SortedSetLengthAsync(keys.Leased));
        Assert.Equal(3, await db.SortedSetLengthAsync(keys.Ready));
        Assert.All(await db.SortedSetRangeByRankAsync(keys.Leased), m => Assert.StartsWith(leased[0].Job.ExecutionId.ToString("N"), m.ToString(), StringComparison.Ordinal));
        Assert.All(await db.SortedSetRangeByRankAsync(keys.Ready), m => Assert.DoesNotContain("~~", m.ToString(), StringComparison.Ordinal));
    }
}
