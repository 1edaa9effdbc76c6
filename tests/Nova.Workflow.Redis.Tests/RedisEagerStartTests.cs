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
        var inputs = new List<int>();
        var (host, meta) = await StartIdleAsync("eagerstart", eager, (context, _) =>
        {
            lock (inputs)
            {
                inputs.Add(context.WorkflowInput.GetInt32());
            }

            return ValueTask.FromResult<JsonElement?>(JsonSerializer.SerializeToElement(context.WorkflowInput.GetInt32() * 2));
        });
        using var owned = host;
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var options = host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<NovaWorkflowOptions>>().Value;
        var db = server.Connection.GetDatabase();

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
        var seen = new TaskCompletionSource<(string? State, string? Activity)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var (host, meta) = await StartIdleAsync("eagerflow", eager: true, (_, _) =>
        {
            seen.TrySetResult((CallerState.Value, System.Diagnostics.Activity.Current?.OperationName));
            return ValueTask.FromResult<JsonElement?>(null);
        });
        using var owned = host;
        var client = host.Services.GetRequiredService<IWorkflowClient>();

        using var caller = new System.Diagnostics.Activity("caller-request").Start();
        CallerState.Value = "caller";
        await client.StartAsync("one");
        CallerState.Value = null;

        var (state, activity) = await seen.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True((await server.Connection.GetDatabase().HashGetAsync(meta, "taken")).IsNull, "the root went through a claim, not an eager start");
        Assert.Null(state);
        Assert.NotEqual("caller-request", activity);
    }

    /// <summary>
    /// A host with a worker on the default queue and workflow "one" (one node, <paramref name="handler"/>), started once its
    /// worker's loop found the queue empty and waits for a wake-up with every slot free (q_idle.lua then marks the queue
    /// idle); returns it and the queue's meta key, which counts the jobs claims took ('taken').
    /// </summary>
    private async Task<(Microsoft.Extensions.Hosting.IHost Host, StackExchange.Redis.RedisKey Meta)> StartIdleAsync(
        string prefix, bool eager, Func<NodeContext, CancellationToken, ValueTask<JsonElement?>> handler)
    {
        var host = await RedisTestHost.StartAsync(server.Connection, prefix + Guid.NewGuid().ToString("N")[..6], nova =>
        {
            nova.Services.Configure<NovaWorkflowOptions>(o =>
            {
                o.EagerDispatch = eager;
                // The loop claims only when woken (a job made ready), not on a poll that could hold its slots while a start
                // looks for a free one.
                o.PollInterval = TimeSpan.FromMinutes(5);
            });
            nova.AddHandler("h", handler).AddWorkflow(new WorkflowBuilder("one").Node("a", "h").Build());
        });
        var meta = ((RedisJobQueue)host.Services.GetRequiredService<IJobQueue>()).KeysOf(WorkflowDefinition.DefaultQueue).All[5];
        try
        {
            await Eventually.TrueAsync(async () => (await server.Connection.GetDatabase().HashGetAsync(meta, "idle")) == "1", "the worker to wait");
        }
        catch
        {
            host.Dispose();
            throw;
        }

        return (host, meta);
    }
}
