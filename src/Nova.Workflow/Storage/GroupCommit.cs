namespace Nova.Workflow.Storage;

/// <summary>
/// Group commit: requests that arrive while every flush slot is busy wait for the next flush and go to the store
/// together, in one round trip and one commit, instead of one each. A request that finds a slot free is flushed at once,
/// alone, so a quiet system pays no latency for the batching (there is no timer); under load the batches grow by
/// themselves to what arrives during one flush.
/// </summary>
/// <typeparam name="TRequest">What callers submit.</typeparam>
/// <typeparam name="TResult">What each of them gets back.</typeparam>
internal sealed class GroupCommit<TRequest, TResult>
{
    private readonly Func<TRequest[], Task<TResult[]>> _flush;
    private readonly int _maxBatch;
    private readonly int _maxInFlight;
    private readonly Lock _gate = new();
    private readonly Queue<Entry> _pending = new();
    private int _flushing;

    /// <param name="flush">
    /// Applies a batch; returns one result per request, in order. When it throws for a batch of several, each request is
    /// flushed again alone, so it must be safe to apply a request whose batch failed (it was rolled back, or it landed and
    /// the request's own conditions now turn it down). A flush for which that does not hold returns each request's error as
    /// its result instead of throwing.
    /// </param>
    /// <param name="maxBatch">At most this many requests per flush.</param>
    /// <param name="maxInFlight">At most this many flushes at once.</param>
    public GroupCommit(Func<TRequest[], Task<TResult[]>> flush, int maxBatch, int maxInFlight)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        _flush = flush;
        _maxBatch = maxBatch;
        _maxInFlight = maxInFlight;
    }

    /// <summary>
    /// Queues the request for the next flush. It is not cancellable once queued: the batch it joins commits or fails as a
    /// whole, so callers submit only work that must be recorded anyway (a finished attempt, a start).
    /// </summary>
    public Task<TResult> SubmitAsync(TRequest request)
    {
        var entry = new Entry(request);
        bool lead;
        lock (_gate)
        {
            _pending.Enqueue(entry);
            lead = _flushing < _maxInFlight;
            if (lead)
            {
                _flushing++;
            }
        }

        if (lead)
        {
            _ = FlushLoopAsync();
        }

        return entry.Completion.Task;
    }

    private async Task FlushLoopAsync()
    {
        while (true)
        {
            Entry[] batch;
            lock (_gate)
            {
                if (_pending.Count == 0)
                {
                    _flushing--;
                    return;
                }

                batch = new Entry[Math.Min(_pending.Count, _maxBatch)];
                for (var k = 0; k < batch.Length; k++)
                {
                    batch[k] = _pending.Dequeue();
                }
            }

            try
            {
                var requests = new TRequest[batch.Length];
                for (var k = 0; k < batch.Length; k++)
                {
                    requests[k] = batch[k].Request;
                }

                var results = await _flush(requests).ConfigureAwait(false);
                for (var k = 0; k < batch.Length; k++)
                {
                    batch[k].Completion.TrySetResult(results[k]);
                }
            }
            catch (Exception ex) when (batch.Length == 1)
            {
                batch[0].Completion.TrySetException(ex);
            }
            catch (Exception)
            {
                // One bad request (an execution whose workflow is not registered, a payload the store refuses) must not fail
                // the others it happened to share a batch with: each goes again alone and gets its own answer.
                foreach (var entry in batch)
                {
                    try
                    {
                        entry.Completion.TrySetResult((await _flush([entry.Request]).ConfigureAwait(false))[0]);
                    }
                    catch (Exception alone)
                    {
                        entry.Completion.TrySetException(alone);
                    }
                }
            }
        }
    }

    private sealed class Entry(TRequest request)
    {
        public TRequest Request { get; } = request;

        // Callers continue on the thread pool, never inline on the flushing loop.
        public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
