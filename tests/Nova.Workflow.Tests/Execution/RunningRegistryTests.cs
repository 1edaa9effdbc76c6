using Nova.Workflow.Execution;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Tests.Execution;

public sealed class RunningRegistryTests
{
    private static RunHandle Run(string node, CancellationToken abort) =>
        new(new LeasedJob(new Job(Guid.NewGuid(), node, 1, "default", 5, null, null), Guid.NewGuid(), 1, DateTimeOffset.UtcNow.AddMinutes(1)), abort);

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
