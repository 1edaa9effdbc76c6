using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// Eager start through the public API: a workflow started in a process whose worker serves its root's queue, with a slot free
/// and nothing waiting, has its root started in the create and run there, with no claim. (The store's side, with the queue
/// busy and a lapsed lease, is in the conformance suite.)
/// </summary>
public sealed class RedisEagerStartTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Starts_with_a_local_idle_worker_run_without_a_claim_unless_eager_dispatch_is_off(bool eager)
    {
        var prefix = "eagerstart" + Guid.NewGuid().ToString("N")[..6];
        var inputs = new List<int>();
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova =>
        {
            nova.Services.Configure<NovaWorkflowOptions>(o =>
            {
                o.EagerDispatch = eager;
                // The worker's loop claims only when woken (a job made ready), not on a poll that could hold its slots
                // while a start looks for a free one.
                o.PollInterval = TimeSpan.FromMinutes(5);
            });
            nova.AddHandler("h", (context, _) =>
                {
                    lock (inputs)
                    {
                        inputs.Add(context.WorkflowInput.GetInt32());
                    }

                    return ValueTask.FromResult<JsonElement?>(JsonSerializer.SerializeToElement(context.WorkflowInput.GetInt32() * 2));
                })
                .AddWorkflow(new WorkflowBuilder("one").Node("a", "h").Build());
        });
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var options = host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<NovaWorkflowOptions>>().Value;

        var queue = (RedisJobQueue)host.Services.GetRequiredService<IJobQueue>();
        var meta = queue.KeysOf(WorkflowDefinition.DefaultQueue).All[5];
        var db = server.Connection.GetDatabase();
        // The loop found the queue empty and waits for a wake-up, its slots free (q_idle.lua marks the queue idle then).
        await Eventually.TrueAsync(async () => (await db.HashGetAsync(meta, "idle")) == "1", "the worker to wait");

        for (var k = 1; k <= 10; k++)
        {
            var done = await client.RunAsync("one", k, timeout: TimeSpan.FromSeconds(30));
            Assert.Equal(2 * k, done.Output!.Value.GetInt32());
            var run = Assert.Single(await client.GetHistoryAsync(done.Id));
            Assert.Equal(options.WorkerId, run.WorkerId);
        }

        Assert.Equal(Enumerable.Range(1, 10), inputs);
        // Each start waited for the one before, so the queue was idle and a slot free each time: eager, no claim took a job.
        var taken = await db.HashGetAsync(meta, "taken");
        if (eager)
        {
            Assert.True(taken.IsNull, $"claims took {taken} jobs");
        }
        else
        {
            Assert.Equal(10, (long)taken);
        }
    }

    private static readonly AsyncLocal<string?> CallerState = new();

    [Fact]
    public async Task A_root_started_in_its_create_runs_without_the_callers_async_local_state()
    {
        // The run belongs to the worker: what the caller of StartAsync carries (an HTTP request's context, a logging scope,
        // its activity) must not reach the handler, as it does not when the root goes through the queue.
        var prefix = "eagerflow" + Guid.NewGuid().ToString("N")[..6];
        var seen = new TaskCompletionSource<(string? State, string? Activity)>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) =>
            {
                seen.TrySetResult((CallerState.Value, System.Diagnostics.Activity.Current?.OperationName));
                return ValueTask.FromResult<JsonElement?>(null);
            })
            .AddWorkflow(new WorkflowBuilder("one").Node("a", "h").Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var queue = (RedisJobQueue)host.Services.GetRequiredService<IJobQueue>();
        var meta = queue.KeysOf(WorkflowDefinition.DefaultQueue).All[5];
        await Eventually.TrueAsync(async () => (await server.Connection.GetDatabase().HashGetAsync(meta, "idle")) == "1", "the worker to wait");

        using var caller = new System.Diagnostics.Activity("caller-request").Start();
        CallerState.Value = "caller";
        await client.StartAsync("one");
        CallerState.Value = null;

        var (state, activity) = await seen.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True((await server.Connection.GetDatabase().HashGetAsync(meta, "taken")).IsNull, "the root went through a claim, not an eager start");
        Assert.Null(state);
        Assert.NotEqual("caller-request", activity);
    }
}
