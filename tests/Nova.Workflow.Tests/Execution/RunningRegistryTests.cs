using Nova.Workflow.Execution;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Tests.Execution;

public sealed class RunningRegistryTests
{
    private static RunHandle Run(string node, CancellationToken abort, Guid? execution = null) =>
        new(new LeasedJob(new Job(execution ?? Guid.NewGuid(), node, 1, "default", 5, null, null), Guid.NewGuid(), 1, DateTimeOffset.UtcNow.AddMinutes(1)), abort);

    private static WorkflowEvent Canceled(Guid execution, string node) =>
        new(EventTypes.NodeCanceled, execution, node, 1, DateTimeOffset.UtcNow, default, null);

    [Fact]
    public void A_canceled_node_revokes_every_run_of_it_here_and_a_removed_run_is_neither_found_nor_revoked()
    {
        var registry = new RunningRegistry();
        var execution = Guid.NewGuid();
        using var first = Run("a", CancellationToken.None, execution);
        using var redelivered = Run("a", CancellationToken.None, execution);
        using var sibling = Run("b", CancellationToken.None, execution);
        using var finished = Run("a", CancellationToken.None, execution);
        using var elsewhere = Run("a", CancellationToken.None);
        foreach (var run in new[] { first, redelivered, sibling, finished, elsewhere })
        {
            registry.Add(run);
        }

        registry.Remove(finished);
        registry.Remove(finished);
        registry.RevokeCanceled([Canceled(execution, "a"), new WorkflowEvent(EventTypes.NodeSucceeded, execution, "b", 1, DateTimeOffset.UtcNow, default, null)]);

        Assert.True(first.Revoked && redelivered.Revoked);
        Assert.False(sibling.Revoked || finished.Revoked || elsewhere.Revoked);
        // By reference: a run is also its logging scope, an enumerable that Assert.Equal would compare item by item.
        Assert.True(registry.Snapshot().ToHashSet(ReferenceEqualityComparer.Instance).SetEquals([first, redelivered, sibling, elsewhere]));

        // Removing from the middle, the end and the head (the latest added) leaves the list whole.
        registry.Remove(sibling);
        registry.Remove(first);
        registry.Remove(elsewhere);
        Assert.Same(redelivered, Assert.Single(registry.Snapshot()));
        registry.RevokeExecution(execution);
        registry.Remove(redelivered);
        Assert.Empty(registry.Snapshot());
    }

    [Fact]
    public void A_hard_stop_cancels_every_run_under_it_even_when_a_handler_callback_throws_and_leaves_other_workers_runs_alone()
    {
        using var abort = new CancellationTokenSource();
        using var otherWorker = new CancellationTokenSource();
        var registry = new RunningRegistry();
        using var throwing = Run("a", abort.Token);
        using var plain = Run("b", abort.Token);
        using var other = Run("c", otherWorker.Token);
        foreach (var run in new[] { throwing, plain, other })
        {
            registry.Add(run);
        }

        // Both throw, so whichever the registry reaches first, a cancel that let the exception out would miss the other.
        throwing.Token.Register(() => throw new InvalidOperationException("a handler's callback failed"));
        plain.Token.Register(() => throw new InvalidOperationException("another handler's callback failed"));
        abort.Cancel();
        registry.CancelRuns(abort.Token);

        Assert.True(throwing.Token.IsCancellationRequested);
        Assert.True(plain.Token.IsCancellationRequested);
        Assert.False(other.Token.IsCancellationRequested);
        // A hard stop is not a revoke: the nodes are released, not dropped.
        Assert.False(throwing.Revoked || plain.Revoked);
    }
}
