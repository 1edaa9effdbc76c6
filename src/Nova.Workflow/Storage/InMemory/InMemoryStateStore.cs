using System.Collections.Concurrent;
using Nova.Workflow.Execution;

namespace Nova.Workflow.Storage.InMemory;

/// <summary>
/// The embedded state store: executions in a concurrent dictionary, each transition applied to
/// its <see cref="ExecutionState"/> under that execution's lock. Same semantics as the durable stores.
/// </summary>
internal sealed class InMemoryStateStore(TimeProvider time, IJobQueue queue, ExecutionEventHub? hub = null) : IStateStore, IExecutionStatusReader
{
    // A transition here is visible the moment it is applied, so it makes only the events its execution's watchers want.
    private readonly Func<Guid, EventInterest>? _eventsWanted = hub is null ? null : hub.InterestIn;
    // Eager dispatch needs the queue in the same process: the in-memory queue, not a remote one in mixed setups.
    private readonly InMemoryJobQueue? _queue = queue as InMemoryJobQueue;
    private readonly ConcurrentDictionary<Guid, ExecutionState> _executions = new();
    private readonly ConcurrentDictionary<string, Guid> _idempotency = new(StringComparer.Ordinal);
    private readonly RateLimiterTable _rates = new();
    private readonly Lock _createLock = new();
    // One delegate for every start (a lambda capturing the start's time allocated a closure per node); the few nodes with a
    // rate limit read the clock again, microseconds later.
    private Func<RateLimit, string, TimeSpan>? _acquireRate;

    public ValueTask<CreateExecutionResult> CreateExecutionAsync(NewExecution execution, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(execution);
        var now = time.GetUtcNow();
        var state = new ExecutionState(execution, now) { EventsWanted = _eventsWanted };
        // Kept for the execution's life: sized for one attempt per node, the common case.
        state.History.Capacity = state.Nodes.Length;
        if (execution.IdempotencyKey is { } key)
        {
            // The key check and the insert must be one step so 50 concurrent starts create one execution.
            lock (_createLock)
            {
                if (_idempotency.TryGetValue(key, out var existing) && _executions.ContainsKey(existing))
                {
                    return new(new CreateExecutionResult(existing, false, StoreTransition.None));
                }

                _idempotency[key] = execution.Id;
                return new(Insert(state, now));
            }
        }

        return new(Insert(state, now));
    }

    private CreateExecutionResult Insert(ExecutionState state, DateTimeOffset now)
    {
        lock (state)
        {
            if (!_executions.TryAdd(state.Id, state))
            {
                throw new InvalidOperationException($"Execution {state.Id} already exists.");
            }

            return new CreateExecutionResult(state.Id, true, state.Start(now));
        }
    }

    public ValueTask<StartNodeResult> TryStartNodeAsync(StartNodeRequest request, CancellationToken cancellationToken = default)
    {
        if (!_executions.TryGetValue(request.Job.Job.ExecutionId, out var state))
        {
            return new(new StartNodeResult { Outcome = StartOutcome.Stale });
        }

        var now = time.GetUtcNow();
        lock (state)
        {
            return new(state.TryStart(request, now, _acquireRate ??= (rate, handler) => _rates.Acquire(handler, rate, time.GetUtcNow())));
        }
    }

    public ValueTask<IReadOnlyList<bool>> HeartbeatAsync(IReadOnlyList<LeasedJob> runs, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        var now = time.GetUtcNow();
        var result = new bool[runs.Count];
        for (var i = 0; i < runs.Count; i++)
        {
            if (_executions.TryGetValue(runs[i].Job.ExecutionId, out var state))
            {
                lock (state)
                {
                    result[i] = state.Heartbeat(runs[i], now, lease);
                }
            }
        }

        return new(result);
    }

    public ValueTask<CompleteNodeResult> CompleteNodeAsync(CompleteNodeRequest request, CancellationToken cancellationToken = default)
    {
        if (!_executions.TryGetValue(request.Run.Job.ExecutionId, out var state))
        {
            return new(CompleteNodeResult.Rejected);
        }

        var now = time.GetUtcNow();
        lock (state)
        {
            var result = state.Complete(request, now);
            if (!result.Accepted || _queue is null)
            {
                return new(result);
            }

            var (transition, next) = state.TryContinue(request, result.Transition, now);
            if (next is null)
            {
                return new(result);
            }

            _queue.AddLeased(next.Job);
            return new(new CompleteNodeResult(true, transition) { Next = next });
        }
    }

    public ValueTask<bool> ReleaseNodeAsync(LeasedJob run, CancellationToken cancellationToken = default)
    {
        if (!_executions.TryGetValue(run.Job.ExecutionId, out var state))
        {
            return new(false);
        }

        lock (state)
        {
            return new(state.Release(run, time.GetUtcNow()));
        }
    }

    public ValueTask<StoreTransition> PauseAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        Apply(executionId, (s, now) => s.Pause(now));

    public ValueTask<StoreTransition> ResumeAsync(Guid executionId, ReviewDecision? decision, CancellationToken cancellationToken = default) =>
        Apply(executionId, (s, now) => s.Resume(decision, now));

    public ValueTask<StoreTransition> CancelAsync(Guid executionId, CancellationToken cancellationToken = default) =>
        Apply(executionId, (s, now) => s.Cancel(now));

    public ValueTask<StoreTransition> RetryAsync(Guid executionId, string? nodeId, CancellationToken cancellationToken = default) =>
        Apply(executionId, (s, now) => s.Retry(nodeId, now));

    public ValueTask<ExecutionStatus?> GetStatusAsync(Guid executionId, CancellationToken cancellationToken) =>
        new(_executions.TryGetValue(executionId, out var state) ? state.Status : null);

    public ValueTask<ExecutionSnapshot?> GetExecutionAsync(Guid executionId, CancellationToken cancellationToken = default)
    {
        if (!_executions.TryGetValue(executionId, out var state))
        {
            return new((ExecutionSnapshot?)null);
        }

        lock (state)
        {
            return new(state.ToSnapshot());
        }
    }

    public ValueTask<IReadOnlyList<NodeRunRecord>?> GetHistoryAsync(Guid executionId, CancellationToken cancellationToken = default)
    {
        if (!_executions.TryGetValue(executionId, out var state))
        {
            return new((IReadOnlyList<NodeRunRecord>?)null);
        }

        lock (state)
        {
            return new(state.HistoryRecords());
        }
    }

    public ValueTask<IReadOnlyList<ExecutionSummary>> ListExecutionsAsync(ExecutionQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        var result = new List<ExecutionSummary>();
        foreach (var (_, state) in _executions)
        {
            lock (state)
            {
                if ((query.Status is null || state.Status == query.Status)
                    && (query.Workflow is null || state.Plan.Workflow == query.Workflow)
                    && (!query.AwaitingReview || Array.Exists(state.Nodes, n => n.Status == NodeStatus.AwaitingReview)))
                {
                    result.Add(state.ToSummary());
                }
            }
        }

        return new(result.OrderByDescending(s => s.Id).Take(query.Limit).ToArray());
    }

    public ValueTask<IReadOnlyList<HandlerStats>> GetHandlerStatsAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        var records = new List<NodeRunRecord>();
        foreach (var (_, state) in _executions)
        {
            lock (state)
            {
                records.AddRange(state.HistoryRecords(since));
            }
        }

        return new(HandlerStatsCalculator.Compute(records));
    }

    public ValueTask<IReadOnlyList<Job>> FindStrandedAsync(DateTimeOffset queuedBefore, int max, CancellationToken cancellationToken = default)
    {
        var now = time.GetUtcNow();
        var jobs = new List<Job>();
        // Enumerating the dictionary itself takes no lock and copies nothing (its Values property locks every bucket
        // and copies every execution, finished ones included, on each sweep); a finished execution is passed by unlocked.
        foreach (var (_, state) in _executions)
        {
            if (state.IsFinished)
            {
                continue;
            }

            lock (state)
            {
                if (!state.CollectStranded(queuedBefore, now, jobs, max))
                {
                    break;
                }
            }
        }

        return new(jobs);
    }

    public ValueTask<int> PurgeFinishedAsync(DateTimeOffset endedBefore, CancellationToken cancellationToken = default)
    {
        var purged = 0;
        foreach (var (id, state) in _executions)
        {
            bool expired;
            lock (state)
            {
                expired = state.IsFinished && state.EndedAt < endedBefore;
            }

            if (expired && _executions.TryRemove(id, out _))
            {
                if (state.IdempotencyKey is { } key)
                {
                    _idempotency.TryRemove(new KeyValuePair<string, Guid>(key, id));
                }

                purged++;
            }
        }

        return new(purged);
    }

    public ValueTask<DateTimeOffset> GetTimeAsync(CancellationToken cancellationToken = default) => new(time.GetUtcNow());

    private ValueTask<StoreTransition> Apply(Guid executionId, Func<ExecutionState, DateTimeOffset, StoreTransition> transition)
    {
        if (!_executions.TryGetValue(executionId, out var state))
        {
            throw new ExecutionNotFoundException(executionId);
        }

        lock (state)
        {
            return new(transition(state, time.GetUtcNow()));
        }
    }
}

/// <summary>Aggregates history records into per-handler statistics (shared by the stores that compute in process).</summary>
internal static class HandlerStatsCalculator
{
    public static IReadOnlyList<HandlerStats> Compute(IEnumerable<NodeRunRecord> records) =>
        [.. records
            .GroupBy(r => r.Handler, StringComparer.Ordinal)
            .Select(g => new HandlerStats(
                g.Key,
                g.Count(),
                g.Count(r => r.Status is not (NodeRunStatus.Succeeded or NodeRunStatus.AwaitingReview or NodeRunStatus.Canceled)),
                g.Max(r => r.Duration),
                TimeSpan.FromTicks((long)g.Average(r => r.Duration.Ticks))))
            .OrderBy(s => s.Handler, StringComparer.Ordinal)];
}

/// <summary>
/// Per-handler rate limits as a sliding log: the last <c>Limit</c> start times per key. A start is
/// allowed when fewer than <c>Limit</c> happened in the last <c>Period</c>, so no window of that length
/// ever holds more than <c>Limit</c> starts (a token bucket would allow up to twice that across a boundary).
/// </summary>
internal sealed class RateLimiterTable
{
    private readonly Dictionary<string, Queue<DateTimeOffset>> _starts = new(StringComparer.Ordinal);

    /// <summary>Takes a slot and returns zero, or returns how long until one frees.</summary>
    public TimeSpan Acquire(string key, RateLimit limit, DateTimeOffset now)
    {
        lock (_starts)
        {
            if (!_starts.TryGetValue(key, out var log))
            {
                log = new Queue<DateTimeOffset>();
                _starts.Add(key, log);
            }

            while (log.Count > 0 && log.Peek() <= now - limit.Period)
            {
                log.Dequeue();
            }

            if (log.Count >= limit.Limit)
            {
                return log.Peek() + limit.Period - now;
            }

            log.Enqueue(now);
            return TimeSpan.Zero;
        }
    }
}
