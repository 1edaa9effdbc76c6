using System.Threading.Tasks.Sources;

namespace Nova.Workflow.Execution;

/// <summary>
/// The run slots of one queue's fetch loop: one taker (the loop), many releasers (finished runs). Unlike a
/// <see cref="SemaphoreSlim"/> with a cancellation token, waiting for a slot allocates nothing: the loop waits once per
/// claim, so on a busy worker that was several objects per job.
/// </summary>
internal sealed class WorkerSlots : IValueTaskSource<bool>, IDisposable
{
    private readonly Lock _lock = new();
    private readonly int _capacity;
    private readonly CancellationTokenRegistration _stopping;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = true };
    private int _free;
    private bool _waiting;
    private bool _closed;

    public WorkerSlots(int capacity, CancellationToken stopping)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        _free = capacity;
        _stopping = stopping.UnsafeRegister(static s => ((WorkerSlots)s!).Close(), this);
    }

    /// <summary>Takes one slot, waiting for one to be released; false once stopping (no slot taken then).</summary>
    public ValueTask<bool> TakeAsync()
    {
        lock (_lock)
        {
            if (_closed)
            {
                return new(false);
            }

            if (_free > 0)
            {
                _free--;
                return new(true);
            }

            _waiter.Reset();
            _waiting = true;
            return new(this, _waiter.Version);
        }
    }

    /// <summary>Takes up to <paramref name="max"/> more slots that are free now, without waiting; returns how many.</summary>
    public int TakeFree(int max)
    {
        lock (_lock)
        {
            var taken = _closed ? 0 : Math.Min(max, _free);
            _free -= taken;
            return taken;
        }
    }

    /// <summary>Gives slots back; the first goes to the waiting taker, if any.</summary>
    public void Release(int count = 1)
    {
        lock (_lock)
        {
            if (_waiting && count > 0)
            {
                _waiting = false;
                count--;
                _waiter.SetResult(true);
            }

            _free += count;
            if (_closed && _free == _capacity)
            {
                _drained.TrySetResult();
            }
        }
    }

    /// <summary>Completes when every slot is back, after stopping: the runs of this loop have ended.</summary>
    public Task DrainAsync()
    {
        Close();
        return _drained.Task;
    }

    public void Dispose() => _stopping.Dispose();

    private void Close()
    {
        lock (_lock)
        {
            _closed = true;
            if (_waiting)
            {
                _waiting = false;
                _waiter.SetResult(false);
            }

            if (_free == _capacity)
            {
                _drained.TrySetResult();
            }
        }
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
