namespace Nova.Workflow.Storage.InMemory;

/// <summary>
/// The embedded job queue: per named queue, ten FIFO buckets by priority plus a not-before heap;
/// leases with expiry (lapsed ones are delivered again), dedupe by (execution, node, attempt),
/// and a wake-up signal for idle workers. One lock guards it; every operation is O(log n) at worst.
/// </summary>
internal sealed class InMemoryJobQueue(TimeProvider time) : IJobQueue
{
    /// <summary>Every Nth take from a queue is its oldest ready job, whatever its priority.</summary>
    internal const int FairnessInterval = 10;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, QueueState> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<(Guid, string, int), Entry> _live = [];
    private readonly Dictionary<Guid, Entry> _leased = [];
    private readonly PriorityQueue<Entry, DateTimeOffset> _leaseExpiry = new();
    private readonly List<DeadLetter> _deadLetters = [];
    private TaskCompletionSource _signal = NewSignal();
    private bool _signalWatched;
    private long _sequence;

    public ValueTask EnqueueAsync(IReadOnlyList<Job> jobs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return ValueTask.CompletedTask;
        }

        var now = time.GetUtcNow();
        TaskCompletionSource? signal;
        lock (_lock)
        {
            // Indexed: a foreach over the interface would allocate its enumerator on every enqueue.
            for (var k = 0; k < jobs.Count; k++)
            {
                var job = jobs[k];
                var key = (job.ExecutionId, job.NodeId, job.Attempt);
                if (_live.ContainsKey(key))
                {
                    continue;
                }

                var entry = new Entry(job, key, ++_sequence);
                _live.Add(key, entry);
                Place(Queue(job.Queue), entry, job.NotBefore, now);
            }

            signal = TakeSignal();
        }

        signal?.TrySetResult();
        return ValueTask.CompletedTask;
    }

    /// <summary>Adds a job already leased (a child the state store started for the completing worker).</summary>
    internal void AddLeased(LeasedJob job)
    {
        lock (_lock)
        {
            var key = (job.Job.ExecutionId, job.Job.NodeId, job.Job.Attempt);
            if (_live.ContainsKey(key))
            {
                return;
            }

            var entry = new Entry(job.Job, key, ++_sequence) { Token = job.LeaseToken, Deliveries = 1, LeaseExpiresAt = job.LeaseExpiresAt, Leased = true };
            _live.Add(key, entry);
            _leased.Add(entry.Token, entry);
            TrackLease(entry);
        }
    }

    public ValueTask<IReadOnlyList<LeasedJob>> DequeueAsync(IReadOnlyList<string> queues, int maxCount, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queues);
        var now = time.GetUtcNow();
        List<LeasedJob>? result = null;
        lock (_lock)
        {
            ReclaimExpired(now);
            var states = new QueueState?[queues.Count];
            for (var q = 0; q < queues.Count; q++)
            {
                if (_queues.TryGetValue(queues[q], out var state))
                {
                    state.PromoteDue(now);
                    states[q] = state;
                }
            }

            // Round-robin across the served queues so one busy queue cannot hide the others.
            var progress = true;
            while (progress && (result?.Count ?? 0) < maxCount)
            {
                progress = false;
                foreach (var state in states)
                {
                    if (state is null || (result?.Count ?? 0) >= maxCount || state.Take() is not { } entry)
                    {
                        continue;
                    }

                    progress = true;
                    (result ??= []).Add(Lease(entry, now, lease));
                }
            }
        }

        return new(result is null ? [] : result);
    }

    /// <summary>
    /// Leases the next ready job of one queue, as <see cref="DequeueAsync"/> would, without waiting or allocating a list: a
    /// worker slot that has just finished takes its next job here instead of handing the slot back to its fetch loop.
    /// </summary>
    internal bool TryTake(string queue, TimeSpan lease, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out LeasedJob? job)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            ReclaimExpired(now);
            if (_queues.TryGetValue(queue, out var state))
            {
                state.PromoteDue(now);
                if (state.Take() is { } entry)
                {
                    job = Lease(entry, now, lease);
                    return true;
                }
            }
        }

        job = null;
        return false;
    }

    private LeasedJob Lease(Entry entry, DateTimeOffset now, TimeSpan lease)
    {
        entry.Token = LeaseTokens.Next();
        entry.Deliveries++;
        entry.LeaseExpiresAt = now + lease;
        entry.Leased = true;
        _leased.Add(entry.Token, entry);
        TrackLease(entry);
        return new LeasedJob(entry.Job, entry.Token, entry.Deliveries, entry.LeaseExpiresAt);
    }

    public async ValueTask WaitAsync(IReadOnlyList<string> queues, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Task signal;
        TimeSpan wait;
        lock (_lock)
        {
            var now = time.GetUtcNow();
            var next = now + timeout;
            foreach (var name in queues)
            {
                if (_queues.TryGetValue(name, out var state))
                {
                    if (state.ReadyCount > 0)
                    {
                        return;
                    }

                    if (state.NextDue is { } due && due < next)
                    {
                        next = due;
                    }
                }
            }

            if (_leaseExpiry.TryPeek(out _, out var expiry) && expiry < next)
            {
                next = expiry;
            }

            wait = next - now;
            if (wait <= TimeSpan.Zero)
            {
                return;
            }

            signal = _signal.Task;
            _signalWatched = true;
        }

        try
        {
            await signal.WaitAsync(wait, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The safety-net timeout: the caller polls again.
        }
    }

    public ValueTask<IReadOnlyList<bool>> ExtendLeasesAsync(IReadOnlyList<LeasedJob> jobs, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        var now = time.GetUtcNow();
        var result = new bool[jobs.Count];
        lock (_lock)
        {
            for (var i = 0; i < jobs.Count; i++)
            {
                if (_leased.TryGetValue(jobs[i].LeaseToken, out var entry))
                {
                    entry.LeaseExpiresAt = now + lease;
                    TrackLease(entry);
                    result[i] = true;
                }
            }
        }

        return new(result);
    }

    public ValueTask<bool> AckAsync(LeasedJob job, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return new(Remove(job.LeaseToken));
        }
    }

    public ValueTask<bool> ReleaseAsync(LeasedJob job, TimeSpan delay, CancellationToken cancellationToken = default)
    {
        TaskCompletionSource? signal;
        lock (_lock)
        {
            if (!_leased.Remove(job.LeaseToken, out var entry))
            {
                return new(false);
            }

            entry.Leased = false;
            entry.Deliveries--;
            var now = time.GetUtcNow();
            Place(Queue(entry.Job.Queue), entry, delay > TimeSpan.Zero ? now + delay : null, now);
            signal = TakeSignal();
        }

        signal?.TrySetResult();
        return new(true);
    }

    public ValueTask DeadLetterAsync(DeadLetter entry, LeasedJob? job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_lock)
        {
            if (job is not null)
            {
                Remove(job.LeaseToken);
            }

            _deadLetters.Add(entry);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(int max, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return new(_deadLetters.AsEnumerable().Reverse().Take(max).ToArray());
        }
    }

    public ValueTask<DeadLetter?> TakeDeadLetterAsync(Guid id, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            var index = _deadLetters.FindIndex(d => d.Id == id);
            if (index < 0)
            {
                return new((DeadLetter?)null);
            }

            var entry = _deadLetters[index];
            _deadLetters.RemoveAt(index);
            return new(entry);
        }
    }

    public ValueTask<long> GetDepthAsync(string queue, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return new(_queues.TryGetValue(queue, out var state) ? state.ReadyCount + state.DelayedCount : 0);
        }
    }

    private bool Remove(Guid token)
    {
        if (!_leased.Remove(token, out var entry))
        {
            return false;
        }

        entry.Leased = false;
        _live.Remove(entry.Key);
        return true;
    }

    /// <summary>Tracks the expiry of a lease already in the leased map (under the lock).</summary>
    private void TrackLease(Entry entry)
    {
        // Heap entries are lazy: an ack or a later extension leaves the old one behind until its time comes. Without a bound
        // the heap kept every job leased in the last lease duration (15 s of jobs at tens of thousands a second) alive;
        // rebuilt from the live leases once stale entries outnumber them, it stays within twice the leases plus a margin.
        if (_leaseExpiry.Count >= 2 * _leased.Count + 1024)
        {
            _leaseExpiry.Clear();
            foreach (var (_, leased) in _leased)
            {
                _leaseExpiry.Enqueue(leased, leased.LeaseExpiresAt);
            }

            return;
        }

        _leaseExpiry.Enqueue(entry, entry.LeaseExpiresAt);
    }

    /// <summary>Lease expiries tracked, live or stale (for tests).</summary>
    internal int TrackedLeases
    {
        get
        {
            lock (_lock)
            {
                return _leaseExpiry.Count;
            }
        }
    }

    private void ReclaimExpired(DateTimeOffset now)
    {
        while (_leaseExpiry.TryPeek(out var entry, out var expiry) && expiry <= now)
        {
            _leaseExpiry.Dequeue();

            // Heap entries are lazy: only the latest expiry of a still-leased job counts.
            if (entry.Leased && entry.LeaseExpiresAt == expiry && _leased.Remove(entry.Token))
            {
                entry.Leased = false;
                Place(Queue(entry.Job.Queue), entry, null, now);
            }
        }
    }

    private QueueState Queue(string name)
    {
        if (!_queues.TryGetValue(name, out var state))
        {
            state = new QueueState();
            _queues.Add(name, state);
        }

        return state;
    }

    private static void Place(QueueState state, Entry entry, DateTimeOffset? notBefore, DateTimeOffset now)
    {
        if (notBefore is { } due && due > now)
        {
            state.Delay(entry, due);
        }
        else
        {
            state.Ready(entry);
        }
    }

    // The signal to complete (under the lock), or null when no worker has waited on it since the last one: a busy queue
    // then allocates no signal per enqueue.
    private TaskCompletionSource? TakeSignal()
    {
        if (!_signalWatched)
        {
            return null;
        }

        _signalWatched = false;
        var signal = _signal;
        _signal = NewSignal();
        return signal;
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private sealed class Entry(Job job, (Guid, string, int) key, long sequence)
    {
        public Job Job { get; } = job;
        public (Guid, string, int) Key { get; } = key;
        public long Sequence { get; } = sequence;
        public Guid Token { get; set; }
        public int Deliveries { get; set; }
        public DateTimeOffset LeaseExpiresAt { get; set; }
        public bool Leased { get; set; }
    }

    private sealed class QueueState
    {
        private readonly Queue<Entry>[] _buckets = [.. Enumerable.Range(0, 10).Select(_ => new Queue<Entry>())];
        private readonly PriorityQueue<Entry, DateTimeOffset> _delayed = new();
        private long _taken;

        public int ReadyCount { get; private set; }

        public int DelayedCount => _delayed.Count;

        public DateTimeOffset? NextDue => _delayed.TryPeek(out _, out var due) ? due : null;

        public void Ready(Entry entry)
        {
            _buckets[Math.Clamp(entry.Job.Priority, 0, 9)].Enqueue(entry);
            ReadyCount++;
        }

        public void Delay(Entry entry, DateTimeOffset due) => _delayed.Enqueue(entry, due);

        public void PromoteDue(DateTimeOffset now)
        {
            while (_delayed.TryPeek(out _, out var due) && due <= now)
            {
                Ready(_delayed.Dequeue());
            }
        }

        public Entry? Take()
        {
            if (ReadyCount == 0)
            {
                return null;
            }

            Queue<Entry>? from = null;
            if (++_taken % FairnessInterval == 0)
            {
                // Anti-starvation: the oldest ready job (lowest sequence) across all priorities.
                foreach (var bucket in _buckets)
                {
                    if (bucket.TryPeek(out var head) && (from is null || head.Sequence < from.Peek().Sequence))
                    {
                        from = bucket;
                    }
                }
            }
            else
            {
                for (var p = 9; p >= 0 && from is null; p--)
                {
                    if (_buckets[p].Count > 0)
                    {
                        from = _buckets[p];
                    }
                }
            }

            ReadyCount--;
            return from!.Dequeue();
        }
    }
}
