using Nova.Workflow.Storage;

namespace Nova.Workflow.Execution;

/// <summary>
/// A node attempt running in this process: its lease and the token source its handler watches, cancelled when the run is
/// revoked or <c>abort</c> (its worker's hard stop) fires. The source is not linked to <c>abort</c> (a linked source costs a
/// registration on the worker's token per run): the worker cancels its runs through <see cref="RunningRegistry.CancelRuns"/>,
/// and a run still going when its attempt returns under the hard stop cancels itself (NodeRunner). It is also the run's
/// logging scope (its execution and node ids), and its own entry in the registry's list: a run allocates nothing else to be
/// found. Not sealed only so the runner's attempt state can be the same object.
/// </summary>
internal class RunHandle(LeasedJob job, CancellationToken abort) : IDisposable, IReadOnlyList<KeyValuePair<string, object?>>
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

    /// <summary>The hard stop of the worker running it.</summary>
    public CancellationToken Abort { get; } = abort;

    // The registry's links, under its lock.
    internal RunHandle? Previous;
    internal RunHandle? Next;
    internal bool Registered;

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

    // The logging scope.
    int IReadOnlyCollection<KeyValuePair<string, object?>>.Count => 2;

    KeyValuePair<string, object?> IReadOnlyList<KeyValuePair<string, object?>>.this[int index] => index switch
    {
        0 => new("ExecutionId", Job.Job.ExecutionId),
        1 => new("NodeId", Job.Job.NodeId),
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    IEnumerator<KeyValuePair<string, object?>> IEnumerable<KeyValuePair<string, object?>>.GetEnumerator()
    {
        IReadOnlyList<KeyValuePair<string, object?>> scope = this;
        yield return scope[0];
        yield return scope[1];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)this).GetEnumerator();

    public override string ToString() => $"ExecutionId:{Job.Job.ExecutionId} NodeId:{Job.Job.NodeId}";
}

/// <summary>
/// The attempts running in this process, so cancel and lease loss reach their handlers: a list through the runs themselves
/// under one lock, so adding and removing a run allocates nothing. Lookups walk it once each: a heartbeat, a cancel signal,
/// the canceled nodes of one transition together. It holds only what runs at the moment, at most the slots of the
/// process's workers.
/// </summary>
internal sealed class RunningRegistry
{
    private readonly Lock _lock = new();
    private RunHandle? _head;

    public void Add(RunHandle run)
    {
        lock (_lock)
        {
            if (run.Registered)
            {
                return;
            }

            run.Registered = true;
            run.Previous = null;
            run.Next = _head;
            if (_head is not null)
            {
                _head.Previous = run;
            }

            _head = run;
        }
    }

    public void Remove(RunHandle run)
    {
        lock (_lock)
        {
            if (!run.Registered)
            {
                return;
            }

            run.Registered = false;
            if (run.Previous is null)
            {
                _head = run.Next;
            }
            else
            {
                run.Previous.Next = run.Next;
            }

            if (run.Next is not null)
            {
                run.Next.Previous = run.Previous;
            }

            run.Previous = run.Next = null;
        }
    }

    /// <summary>Revokes the runs here of the nodes that <paramref name="events"/> cancel, in one walk.</summary>
    public void RevokeCanceled(IReadOnlyList<WorkflowEvent> events)
    {
        HashSet<(Guid, string)>? canceled = null;
        for (var k = 0; k < events.Count; k++)
        {
            if (events[k] is { Type: EventTypes.NodeCanceled, NodeId: { } node } e)
            {
                (canceled ??= []).Add((e.ExecutionId, node));
            }
        }

        if (canceled is null)
        {
            return;
        }

        foreach (var run in Find(r => canceled.Contains((r.Job.Job.ExecutionId, r.Job.Job.NodeId))))
        {
            run.Revoke();
        }
    }

    /// <summary>Revokes every attempt of <paramref name="executionId"/> running here (a cancel signal from another process).</summary>
    public void RevokeExecution(Guid executionId)
    {
        foreach (var run in Find(r => r.Job.Job.ExecutionId == executionId))
        {
            run.Revoke();
        }
    }

    /// <summary>Cancels the handlers of every run under the hard stop <paramref name="abort"/> (which has fired).</summary>
    public void CancelRuns(CancellationToken abort)
    {
        foreach (var run in Find(r => r.Abort == abort))
        {
            run.Cancel();
        }
    }

    public RunHandle[] Snapshot() => Find(static _ => true);

    // The matches, so callers revoke or cancel them outside the lock: a handler's callbacks run inside the cancel.
    private RunHandle[] Find(Func<RunHandle, bool> match)
    {
        List<RunHandle>? found = null;
        lock (_lock)
        {
            for (var run = _head; run is not null; run = run.Next)
            {
                if (match(run))
                {
                    (found ??= []).Add(run);
                }
            }
        }

        return found is null ? [] : [.. found];
    }
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

        runs.RevokeCanceled(events);
        hub.Publish(events);
    }
}
