using Nova.Workflow.Execution;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Tests.Execution;

public sealed class LocalWorkersTests
{
    private static readonly ContinuationOffer Offer = new("w1", TimeSpan.FromSeconds(30), 3);

    [Fact]
    public void Lends_a_free_slot_of_a_loop_serving_a_roots_queue_until_the_loop_unregisters()
    {
        var workers = new LocalWorkers();
        // Roots on two queues: the first root's queue has no loop here, the second's has one with one slot.
        var plan = ExecutionPlan.Create(new WorkflowBuilder("w").Node("a", "h", n => n.Queue("elsewhere")).Node("b", "h").Build());
        using var slots = new WorkerSlots(1, CancellationToken.None);
        var ran = new List<ContinuedStart>();
        Assert.False(workers.TryLend(plan, out _, out _));

        var registration = workers.Register(WorkflowDefinition.DefaultQueue, new SlotLender(slots, Offer, ran.Add));
        Assert.True(workers.TryLend(plan, out var lender, out var queue));
        Assert.Equal(WorkflowDefinition.DefaultQueue, queue);
        Assert.Same(Offer, lender.Offer);
        // Its one slot is lent: nothing more until it comes back.
        Assert.False(workers.TryLend(plan, out _, out _));
        Assert.Equal(0, slots.TakeFree(1));
        lender.Return();
        Assert.True(workers.TryLend(plan, out lender, out _));
        var started = new ContinuedStart(new LeasedJob(new Job(Guid.NewGuid(), "b", 1, WorkflowDefinition.DefaultQueue, 5, null, null), Guid.NewGuid(), 1, DateTimeOffset.UtcNow), new StartNodeResult { Outcome = StartOutcome.Started });
        lender.Run(started);
        Assert.Same(started, Assert.Single(ran));
        slots.Release();

        registration.Dispose();
        Assert.False(workers.TryLend(plan, out _, out _));
        Assert.Equal(1, slots.TakeFree(1));
    }

    [Fact]
    public async Task Lends_nothing_once_the_loop_is_stopping()
    {
        var workers = new LocalWorkers();
        var plan = ExecutionPlan.Create(new WorkflowBuilder("w").Node("a", "h").Build());
        using var stopping = new CancellationTokenSource();
        using var slots = new WorkerSlots(4, stopping.Token);
        using var registration = workers.Register(WorkflowDefinition.DefaultQueue, new SlotLender(slots, Offer, _ => { }));
        await stopping.CancelAsync();
        Assert.False(workers.TryLend(plan, out _, out _));
    }
}
