using System.Diagnostics.CodeAnalysis;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Execution;

/// <summary>
/// The fetch loops of this process's workers, by queue, for eager start: a client creating an execution borrows a free run
/// slot of a loop serving a root's queue, and a store that can (<see cref="IStartingStateStore"/>) starts that root for it in
/// the create, so the root skips the queue round trip and the claim.
/// </summary>
internal sealed class LocalWorkers
{
    private readonly Lock _lock = new();

    // Copied on write: a worker registers once per queue at start, and every create reads it.
    private Dictionary<string, SlotLender[]> _byQueue = new(StringComparer.Ordinal);

    /// <summary>Makes <paramref name="lender"/>'s slots lendable for <paramref name="queue"/> until the returned handle is disposed.</summary>
    public IDisposable Register(string queue, SlotLender lender)
    {
        Update(queue, lenders => [.. lenders, lender]);
        return new Registration(this, queue, lender);
    }

    /// <summary>
    /// Takes a free slot of a loop serving the queue of one of <paramref name="plan"/>'s roots, trying the roots in order;
    /// false when none is free (or no loop here serves those queues).
    /// </summary>
    public bool TryLend(ExecutionPlan plan, [NotNullWhen(true)] out SlotLender? lender, [NotNullWhen(true)] out string? queue)
    {
        var byQueue = Volatile.Read(ref _byQueue);
        if (byQueue.Count > 0)
        {
            foreach (var root in plan.Roots)
            {
                var name = plan.Nodes[root].Queue;
                if (!byQueue.TryGetValue(name, out var lenders))
                {
                    continue;
                }

                foreach (var candidate in lenders)
                {
                    if (candidate.TryTake())
                    {
                        (lender, queue) = (candidate, name);
                        return true;
                    }
                }
            }
        }

        (lender, queue) = (null, null);
        return false;
    }

    private void Update(string queue, Func<SlotLender[], SlotLender[]> change)
    {
        lock (_lock)
        {
            var next = new Dictionary<string, SlotLender[]>(_byQueue, StringComparer.Ordinal);
            var lenders = change(next.GetValueOrDefault(queue) ?? []);
            if (lenders.Length == 0)
            {
                next.Remove(queue);
            }
            else
            {
                next[queue] = lenders;
            }

            Volatile.Write(ref _byQueue, next);
        }
    }

    private sealed class Registration(LocalWorkers owner, string queue, SlotLender lender) : IDisposable
    {
        public void Dispose() => owner.Update(queue, lenders => Array.FindAll(lenders, l => l != lender));
    }
}

/// <summary>One fetch loop's run slots as <see cref="LocalWorkers"/> lends them.</summary>
/// <param name="slots">The loop's slots.</param>
/// <param name="offer">The loop's worker identity and lease terms.</param>
/// <param name="run">Runs a root started for the loop in a slot taken for it, and gives the slot back when the run ends.</param>
internal sealed class SlotLender(WorkerSlots slots, ContinuationOffer offer, Action<ContinuedStart> run)
{
    public ContinuationOffer Offer => offer;

    /// <summary>Takes a free slot without waiting; false when none is free or the loop is stopping.</summary>
    public bool TryTake() => slots.TakeFree(1) == 1;

    /// <summary>Gives back a slot taken and not used.</summary>
    public void Return() => slots.Release();

    /// <summary>
    /// Runs <paramref name="started"/> in a slot taken for it. The run is the worker's, not its caller's: none of the
    /// caller's async-local state (its activity, logging scopes, an HTTP request's context) flows into it, as none does
    /// into a run the fetch loop claims.
    /// </summary>
    public void Run(ContinuedStart started)
    {
        using (ExecutionContext.SuppressFlow())
        {
            run(started);
        }
    }
}
