using System.Collections.Concurrent;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Execution;

/// <summary>
/// A node attempt running in this process: its lease and the token source its handler watches, cancelled when the run is
/// revoked or <c>abort</c> (its worker's hard stop) fires. The source is not linked to <c>abort</c> (a linked source costs a
/// registration on the worker's token per run): the worker cancels its runs through <see cref="RunningRegistry.CancelRuns"/>,
/// and a run still going when its attempt returns under the hard stop cancels itself (NodeRunner).
/// </summary>
internal sealed class RunHandle(LeasedJob job, CancellationToken abort) : IDisposable
{
    private readonly CancellationTokenSource _cts = new();

    public LeasedJob Job { get; } = job;

    public CancellationToken Token => _cts.Token;

    /// <summary>
    /// Set once the handler returned and its outcome is being committed: the run stays registered (its leases kept alive)
    /// until the commit, and a heartbeat that finds it no longer owned is racing its own completion, not a lost lease.
    /// </summary>
    public volatile bool Completing;

    /// <summary>Set when the state moved on (cancel, lease lost): the attempt's result no longer counts.</summary>
    public bool Revoked { get; private set; }

    public void Revoke()
    {
        Revoked = true;
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Finished concurrently: nothing left to cancel.
        }
    }

    /// <summary>The hard stop of the worker running it.</summary>
    public CancellationToken Abort { get; } = abort;

    /// <summary>
    /// Cancels the handler for a hard stop: the run is not revoked, so its node is released, not dropped. A callback the
    /// handler registered on its token that throws does not stop the cancel of other runs.
    /// </summary>
    public void Cancel()
    {
        try
        {
            _cts.Cancel();
        }
        catch (Exception ex) when (ex is ObjectDisposedException or AggregateException)
        {
            // Finished concurrently (nothing left to cancel), or a handler's own callback failed: its token is cancelled.
        }
    }

    public void Dispose() => _cts.Dispose();
}

/// <summary>The attempts running in this process, so cancel and lease loss reach their handlers.</summary>
internal sealed class RunningRegistry
{
    // Every run adds and removes itself; nothing reads Count (it takes every lock stripe, and calling it on each
    // transition was the most contended lock of in-memory runs).
    private readonly ConcurrentDictionary<(Guid, string), RunHandle> _runs = new();

    public void Add(RunHandle run) => _runs[(run.Job.Job.ExecutionId, run.Job.Job.NodeId)] = run;

    public void Remove(RunHandle run) => _runs.TryRemove(new KeyValuePair<(Guid, string), RunHandle>((run.Job.Job.ExecutionId, run.Job.Job.NodeId), run));

    public void Revoke(Guid executionId, string nodeId)
    {
        if (_runs.TryGetValue((executionId, nodeId), out var run))
        {
            run.Revoke();
        }
    }

    /// <summary>Revokes every attempt of <paramref name="executionId"/> running here (a cancel signal from another process).</summary>
    public void RevokeExecution(Guid executionId)
    {
        foreach (var ((execution, _), run) in _runs)
        {
            if (execution == executionId)
            {
                run.Revoke();
            }
        }
    }

    /// <summary>Cancels the handlers of every run under the hard stop <paramref name="abort"/> (which has fired).</summary>
    public void CancelRuns(CancellationToken abort)
    {
        foreach (var (_, run) in _runs)
        {
            if (run.Abort == abort)
            {
                run.Cancel();
            }
        }
    }

    public RunHandle[] Snapshot() => [.. _runs.Values];
}

/// <summary>Carries out what a store transition asks for: enqueue ready jobs, publish events, revoke canceled runs.</summary>
internal sealed class TransitionDispatcher(IJobQueue queue, ExecutionEventHub hub, RunningRegistry runs)
{
    public async ValueTask ApplyAsync(StoreTransition transition, CancellationToken cancellationToken)
    {
        if (!transition.JobsEnqueued && transition.Jobs.Count > 0)
        {
            await queue.EnqueueAsync(transition.Jobs, cancellationToken).ConfigureAwait(false);
        }

        var events = transition.Events;
        if (events.Count == 0)
        {
            return;
        }

        foreach (var e in events)
        {
            if (e.Type == EventTypes.NodeCanceled && e.NodeId is not null)
            {
                runs.Revoke(e.ExecutionId, e.NodeId);
            }
        }

        hub.Publish(events);
    }
}
