using System.Text.Json;
using System.Threading.Channels;
using Nova.Workflow.Execution;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;
using Xunit;

namespace Nova.Workflow.Tests.Storage;

/// <summary>The in-memory store makes a transition's events only for watchers in the process that want them.</summary>
public sealed class InMemoryEventInterestTests
{
    private static readonly ExecutionPlan Plan = ExecutionPlan.Create(new WorkflowBuilder("interest").Node("a", "h").Build());

    [Fact]
    public async Task An_unwatched_execution_gets_no_events_a_waiter_gets_the_end_and_a_watcher_everything()
    {
        var hub = new ExecutionEventHub();
        var store = new InMemoryStateStore(TimeProvider.System, new InMemoryJobQueue(TimeProvider.System), hub);

        // No one watches: the create still queues the root, with no events made.
        var unwatched = await store.CreateExecutionAsync(New());
        Assert.Single(unwatched.Transition.Jobs);
        Assert.Empty(unwatched.Transition.Events);
        Assert.Empty(await RunAsync(store, unwatched.Transition.Jobs[0]));

        // A waiter for the outcome: the end alone.
        var waited = New();
        using (hub.Subscribe(waited.Id, Channel.CreateUnbounded<WorkflowEvent>().Writer, terminalOnly: true))
        {
            var created = await store.CreateExecutionAsync(waited);
            Assert.Empty(created.Transition.Events);
            var events = await RunAsync(store, created.Transition.Jobs[0]);
            Assert.Equal([EventTypes.ExecutionSucceeded], events);
        }

        // A watcher of every event, beside a waiter: everything.
        var watched = New();
        using (hub.Subscribe(watched.Id, Channel.CreateUnbounded<WorkflowEvent>().Writer, terminalOnly: true))
        using (hub.Subscribe(watched.Id, Channel.CreateUnbounded<WorkflowEvent>().Writer))
        {
            var created = await store.CreateExecutionAsync(watched);
            Assert.Equal([EventTypes.ExecutionStarted, EventTypes.NodeQueued], created.Transition.Events.Select(e => e.Type));
            var events = await RunAsync(store, created.Transition.Jobs[0]);
            Assert.Equal([EventTypes.NodeStarted, EventTypes.NodeSucceeded, EventTypes.ExecutionSucceeded], events);
        }
    }

    [Fact]
    public async Task A_watched_create_reports_each_root_queued_once_in_plan_order()
    {
        var hub = new ExecutionEventHub();
        var store = new InMemoryStateStore(TimeProvider.System, new InMemoryJobQueue(TimeProvider.System), hub);
        var plan = ExecutionPlan.Create(new WorkflowBuilder("roots").Node("r1", "h").Node("r2", "h").Node("c", "h", n => n.DependsOn("r1", "r2")).Node("r3", "h").Build());
        var execution = new NewExecution(Guid.NewGuid(), plan, JsonDocument.Parse("{}").RootElement, null, null);
        using var watch = hub.Subscribe(execution.Id, Channel.CreateUnbounded<WorkflowEvent>().Writer);

        var created = await store.CreateExecutionAsync(execution);

        Assert.Equal(EventTypes.ExecutionStarted, created.Transition.Events[0].Type);
        var queued = created.Transition.Events.Skip(1).ToList();
        Assert.All(queued, e => Assert.Equal((EventTypes.NodeQueued, 1, execution.Id), (e.Type, e.Attempt, e.ExecutionId)));
        Assert.Equal(plan.Roots.Select(r => plan.Graph.Ids[r]), queued.Select(e => e.NodeId));
        Assert.Equal(["r1", "r2", "r3"], queued.Select(e => e.NodeId).Order());
        Assert.Equal(queued.Select(e => e.NodeId), created.Transition.Jobs.Select(j => j.NodeId));
    }

    private static NewExecution New() => new(Guid.NewGuid(), Plan, JsonDocument.Parse("{}").RootElement, null, null);

    /// <summary>Starts and completes the job's node; the events of both transitions, in order.</summary>
    private static async Task<string[]> RunAsync(InMemoryStateStore store, Job job)
    {
        var run = new LeasedJob(job, Guid.NewGuid(), 1, DateTimeOffset.UtcNow.AddMinutes(1));
        var started = await store.TryStartNodeAsync(new StartNodeRequest(run, "w", TimeSpan.FromMinutes(1), 3));
        Assert.Equal(StartOutcome.Started, started.Outcome);
        var completed = await store.CompleteNodeAsync(new CompleteNodeRequest { Run = run, Outcome = AttemptOutcome.Succeeded, FinalAttempt = 1, StartedAt = DateTimeOffset.UtcNow });
        Assert.True(completed.Accepted);
        return [.. started.Transition.Events.Concat(completed.Transition.Events).Select(e => e.Type)];
    }
}
