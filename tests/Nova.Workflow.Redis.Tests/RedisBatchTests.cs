using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// Completions, and creates, that arrive together run as one script over several executions. The script keeps what it read
/// of an execution while the next completion is of the same one, so these batches are built by hand to make sure it does.
/// (The conformance suite sends creates together through the store, a duplicate among them.)
/// </summary>
public sealed class RedisBatchTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task A_claim_of_many_roots_of_two_executions_starts_each_with_its_own_input_and_their_leaves_complete_in_one_batch()
    {
        // The claim answers a start of a root that follows a start of the same execution in one value, and a completion that
        // says nothing more (a leaf) in one value: each must still read as its own execution's.
        var prefix = "short" + Guid.NewGuid().ToString("N")[..6];
        var roots = new WorkflowBuilder("roots");
        for (var i = 0; i < 5; i++)
        {
            roots.Node($"r{i}", "h");
        }

        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(roots.Build()), withWorker: false);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var store = (RedisStateStore)host.Services.GetRequiredService<IStateStore>();
        var a = await client.StartAsync("roots", 7);
        var b = await client.StartAsync("roots", "eight");

        var claimed = await store.ClaimAndStartAsync("default", 64, new ContinuationOffer("w1", TimeSpan.FromMinutes(1), 3), CancellationToken.None);

        Assert.Equal(10, claimed.Count);
        Assert.All(claimed, c =>
        {
            Assert.NotNull(c.Start);
            Assert.Equal(StartOutcome.Started, c.Start.Outcome);
            Assert.Equal("roots", c.Start.Plan!.Workflow);
            Assert.Empty(c.Start.ParentOutputs);
            var input = c.Start.WorkflowInput;
            Assert.Equal(c.Job.Job.ExecutionId == a ? "7" : "\"eight\"", input.GetRawText());
        });
        Assert.Equal(5, claimed.Count(c => c.Job.Job.ExecutionId == a));

        var results = await store.CompleteTogetherAsync([.. claimed.Select(c => new CompleteNodeRequest
        {
            Run = c.Job,
            Plan = c.Start!.Plan,
            Outcome = AttemptOutcome.Succeeded,
            FinalAttempt = 1,
            StartedAt = DateTimeOffset.UtcNow,
        })]);
        Assert.All(results, r => Assert.True(r.Result!.Accepted));
        Assert.All(results, r => Assert.Null(r.Result!.Next));
        Assert.Equal(ExecutionStatus.Succeeded, (await client.GetAsync(a)).Status);
        Assert.Equal(ExecutionStatus.Succeeded, (await client.GetAsync(b)).Status);
    }

    [Fact]
    public async Task A_batch_that_interleaves_executions_counts_each_completion_once_and_reports_cancels_only()
    {
        var prefix = "batch" + Guid.NewGuid().ToString("N")[..6];
        var join = new WorkflowBuilder("join-batch");
        var parents = new[] { "p0", "p1", "p2", "p3" };
        foreach (var p in parents)
        {
            join.Node(p, "h");
        }

        join.Node("join", "h", n => n.DependsOn(parents));
        var failFast = new WorkflowBuilder("ff-batch").Node("f0", "h").Node("f1", "h").Node("f2", "h").OnFailure(FailureMode.FailFast).Build();
        // No worker: the test leases, starts and completes the jobs itself.
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(join.Build())
            .AddWorkflow(failFast), withWorker: false);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var store = (RedisStateStore)host.Services.GetRequiredService<IStateStore>();
        var queue = host.Services.GetRequiredService<IJobQueue>();

        var a = await client.StartAsync("join-batch");
        var b = await client.StartAsync("ff-batch");
        var runs = new Dictionary<string, (LeasedJob Job, ExecutionPlan Plan)>();
        while (runs.Count < 7)
        {
            foreach (var job in await queue.DequeueAsync(["default"], 10, TimeSpan.FromMinutes(1)))
            {
                var start = await store.TryStartNodeAsync(new StartNodeRequest(job, "w1", TimeSpan.FromMinutes(1), 3));
                Assert.Equal(StartOutcome.Started, start.Outcome);
                runs[job.Job.NodeId] = (job, start.Plan!);
            }
        }

        CompleteNodeRequest Done(string node) => new() { Run = runs[node].Job, Plan = runs[node].Plan, Outcome = AttemptOutcome.Succeeded, FinalAttempt = 1, StartedAt = DateTimeOffset.UtcNow, Output = JsonDocument.Parse($"\"{node}\"").RootElement };
        CompleteNodeRequest Failed(string node) => Done(node) with { Outcome = AttemptOutcome.Failed, Output = null, Error = new NodeError("Boom", "boom", ErrorClass.Permanent) };

        // A, A, B (fails fast: cancels B's other nodes), A, A again (stale), B (its execution has ended), A (releases the join).
        // A running execution missing from the active index (say a resume's separate SADD was lost) is put back.
        Assert.True(await server.Connection.GetDatabase().SetRemoveAsync(store.Keys.ActiveIndex, a.ToString("N")));
        var batch = new[] { Done("p0"), Done("p1"), Failed("f0"), Done("p2"), Done("p2"), Done("f1"), Done("p3") };
        var replies = await store.CompleteTogetherAsync(batch);
        var results = replies.Select(r => r.Result ?? throw r.Error!).ToArray();

        Assert.Equal([true, true, true, true, false, false, true], results.Select(r => r.Accepted));
        // Events come back only with a cancel (the worker revokes those runs); watchers get the rest by PUBLISH.
        Assert.Empty(results[0].Transition.Events);
        Assert.Equal(["f1", "f2"], results[2].Transition.Events.Where(e => e.Type == EventTypes.NodeCanceled).Select(e => e.NodeId).Order());
        Assert.Equal("join", Assert.Single(results.SelectMany(r => r.Transition.Jobs)).NodeId);

        var snapshotA = await client.GetAsync(a);
        Assert.Equal((ExecutionStatus.Running, 4), (snapshotA.Status, snapshotA.Progress.Done));
        Assert.Equal(parents, snapshotA.Nodes.Where(n => n.Status == NodeStatus.Succeeded).Select(n => n.Id));
        Assert.Equal(4, (await client.GetHistoryAsync(a)).Count);
        var snapshotB = await client.GetAsync(b);
        Assert.Equal(ExecutionStatus.Failed, snapshotB.Status);
        Assert.Equal([NodeStatus.Failed, NodeStatus.Canceled, NodeStatus.Canceled], snapshotB.Nodes.Select(n => n.Status));
        var active = (await server.Connection.GetDatabase().SetMembersAsync(store.Keys.ActiveIndex)).Select(m => (string)m!).ToList();
        Assert.Equal([a.ToString("N")], active);

        // The count the script kept across the batch must be the stored one: the join's completion ends A.
        var last = Assert.Single(await queue.DequeueAsync(["default"], 10, TimeSpan.FromMinutes(1)));
        var joinStart = await store.TryStartNodeAsync(new StartNodeRequest(last, "w1", TimeSpan.FromMinutes(1), 3));
        runs["join"] = (last, joinStart.Plan!);
        Assert.True((await store.CompleteNodeAsync(Done("join"))).Accepted);
        Assert.Equal(ExecutionStatus.Succeeded, (await client.GetAsync(a)).Status);
        await host.StopAsync();
    }

    [Fact]
    public async Task A_sweep_that_races_a_retry_leaves_the_running_execution_in_the_active_index()
    {
        var prefix = "sweep" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("retried").Node("a", "h").Build()), withWorker: false);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var store = (RedisStateStore)host.Services.GetRequiredService<IStateStore>();
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var db = server.Connection.GetDatabase();

        // An execution that failed, left in the index as a sweep may find one (its removal had not happened yet).
        var id = await client.StartAsync("retried");
        var job = Assert.Single(await queue.DequeueAsync(["default"], 1, TimeSpan.FromMinutes(1)));
        var start = await store.TryStartNodeAsync(new StartNodeRequest(job, "w1", TimeSpan.FromMinutes(1), 3));
        Assert.True((await store.CompleteNodeAsync(new CompleteNodeRequest { Run = job, Plan = start.Plan, Outcome = AttemptOutcome.Failed, FinalAttempt = 1, StartedAt = DateTimeOffset.UtcNow, Error = new NodeError("Boom", "boom", ErrorClass.Permanent) })).Accepted);
        Assert.Equal(ExecutionStatus.Failed, (await client.GetAsync(id)).Status);
        await db.SetAddAsync(store.Keys.ActiveIndex, id.ToString("N"));

        // The sweep reads it as failed; a retry makes it run again (and re-adds it) before the sweep removes it.
        store.BeforeIndexRemoval = async removed =>
        {
            await client.RetryAsync(removed);
            await Eventually.TrueAsync(() => db.SetContainsAsync(store.Keys.ActiveIndex, removed.ToString("N")), "the retry's re-add");
        };
        await store.FindStrandedAsync(DateTimeOffset.UtcNow, 100);

        Assert.Equal(ExecutionStatus.Running, (await client.GetAsync(id)).Status);
        Assert.True(await db.SetContainsAsync(store.Keys.ActiveIndex, id.ToString("N")));
        await host.StopAsync();
    }

    [Fact]
    public async Task A_batch_of_creates_queues_each_root_once_on_its_own_queue_and_indexes_each_execution_and_a_duplicate_fails_alone()
    {
        var prefix = "cbatch" + Guid.NewGuid().ToString("N")[..6];
        var one = new WorkflowBuilder("one-batch").Node("a", "h").Build();
        var two = new WorkflowBuilder("two-batch").Node("x", "h", n => n.Queue("other").Priority(7)).Node("y", "h").Build();
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(one)
            .AddWorkflow(two), withWorker: false);
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var store = (RedisStateStore)host.Services.GetRequiredService<IStateStore>();
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var db = server.Connection.GetDatabase();

        // The plans are stored by a first create of each; its jobs are taken out of the way, and their starts tell the plans.
        var taken = await client.StartAsync("one-batch");
        await client.StartAsync("two-batch");
        var first = await queue.DequeueAsync(["default", "other"], 10, TimeSpan.FromMinutes(1));
        Assert.Equal(3, first.Count);
        var plans = new Dictionary<string, ExecutionPlan>();
        foreach (var job in first)
        {
            plans[job.Job.NodeId] = (await store.TryStartNodeAsync(new StartNodeRequest(job, "w1", TimeSpan.FromMinutes(1), 3))).Plan!;
        }

        // Two plans on two queue layouts, interleaved, and one create of an id that is taken.
        var (planOne, planTwo) = (plans["a"], plans["x"]);
        var creates = Enumerable.Range(0, 12)
            .Select(k => new NewExecution(k == 5 ? taken : Guid.CreateVersion7(), k % 2 == 0 ? planOne : planTwo, JsonDocument.Parse($"{k}").RootElement, null, null))
            .ToArray();
        var replies = await store.CreateTogetherAsync(creates);

        Assert.Equal(12, replies.Length);
        for (var k = 0; k < creates.Length; k++)
        {
            Assert.Equal(k == 5 ? 2 : 0, (int)replies[k][0]);
            // A create that went as planned answers in the short form: its jobs are the plan's roots (RootJobs).
            Assert.True(k == 5 || ReferenceEquals(ScriptResults.Accepted, replies[k]));
        }

        var created = creates.Where((_, k) => k != 5).ToArray();
        var defaultJobs = await queue.DequeueAsync(["default"], 100, TimeSpan.FromMinutes(1));
        var otherJobs = await queue.DequeueAsync(["other"], 100, TimeSpan.FromMinutes(1));
        // Each root once: "a" of the six of plan one and "y" of the five of plan two on default, "x" of those five on other.
        Assert.Equal(created.Where(c => c.Plan == planOne).Select(c => (c.Id, "a")).Concat(created.Where(c => c.Plan == planTwo).Select(c => (c.Id, "y"))).Order(),
            defaultJobs.Select(j => (j.Job.ExecutionId, j.Job.NodeId)).Order());
        Assert.Equal(created.Where(c => c.Plan == planTwo).Select(c => (c.Id, "x")).Order(), otherJobs.Select(j => (j.Job.ExecutionId, j.Job.NodeId)).Order());
        Assert.All(otherJobs, j => Assert.Equal(7, j.Job.Priority));
        foreach (var c in created)
        {
            Assert.Equal(ExecutionStatus.Running, (await client.GetAsync(c.Id)).Status);
            Assert.NotNull(await db.SortedSetScoreAsync(store.Keys.ExecutionIndex, c.Id.ToString("N")));
            Assert.True(await db.SetContainsAsync(store.Keys.ActiveIndex, c.Id.ToString("N")));
        }

        // The taken id keeps its first execution.
        Assert.Equal("one-batch", (await client.GetAsync(taken)).Workflow);
        Assert.Equal(JsonValueKind.Null, (await client.GetAsync(taken)).Input.ValueKind);
    }
}
