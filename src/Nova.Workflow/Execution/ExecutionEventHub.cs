using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Nova.Workflow.Execution;

/// <summary>
/// Events of an execution that happen in other processes, supplied by providers with a signal
/// channel (Redis pub/sub). When registered, watchers read from it instead of the in-process hub.
/// A missed message only delays a watcher: the durable state is polled as the safety net.
/// </summary>
internal interface IRemoteEvents
{
    /// <summary>
    /// Subscribes <paramref name="writer"/> to the execution's events; with <paramref name="terminalOnly"/> to the event that
    /// ends it alone (a waiter for the outcome), which lets the provider skip publishing the transitions before it.
    /// </summary>
    ValueTask<IAsyncDisposable> SubscribeAsync(Guid executionId, ChannelWriter<WorkflowEvent> writer, bool terminalOnly, CancellationToken cancellationToken);
}

/// <summary>Which of an execution's events its watchers in this process want.</summary>
internal enum EventInterest
{
    /// <summary>No one watches it.</summary>
    None,

    /// <summary>Only the event that ends it.</summary>
    Outcome,

    /// <summary>Every event.</summary>
    All,
}

/// <summary>In-process fan-out of transition events to watchers of an execution.</summary>
internal sealed class ExecutionEventHub
{
    private readonly ConcurrentDictionary<Guid, List<Watcher>> _watchers = new();
    private readonly Lock _subscriptionLock = new();
    private int _count;
    private int _eventWatchers;

    /// <summary>Whether any execution is watched, for its outcome at least.</summary>
    public bool HasWatchers => Volatile.Read(ref _count) > 0;

    /// <summary>Whether any watcher wants every event (progress reports are built only then).</summary>
    public bool HasEventWatchers => Volatile.Read(ref _eventWatchers) > 0;

    /// <summary>Which events of <paramref name="executionId"/> the watchers here want.</summary>
    public EventInterest InterestIn(Guid executionId)
    {
        if (Volatile.Read(ref _count) == 0 || !_watchers.TryGetValue(executionId, out var watchers))
        {
            return EventInterest.None;
        }

        if (Volatile.Read(ref _eventWatchers) == 0)
        {
            return EventInterest.Outcome;
        }

        lock (watchers)
        {
            foreach (var watcher in watchers)
            {
                if (!watcher.TerminalOnly)
                {
                    return EventInterest.All;
                }
            }
        }

        return EventInterest.Outcome;
    }

    public void Publish(IReadOnlyList<WorkflowEvent> events)
    {
        if (!HasWatchers)
        {
            return;
        }

        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            if (_watchers.TryGetValue(e.ExecutionId, out var watchers))
            {
                var terminal = e.IsTerminal;
                lock (watchers)
                {
                    foreach (var watcher in watchers)
                    {
                        if (terminal || !watcher.TerminalOnly)
                        {
                            watcher.Writer.TryWrite(e);
                        }
                    }
                }
            }
        }
    }

    /// <summary>Subscribes to an execution's events; with <paramref name="terminalOnly"/> to the event that ends it alone.</summary>
    public IDisposable Subscribe(Guid executionId, ChannelWriter<WorkflowEvent> writer, bool terminalOnly = false)
    {
        // Subscribe and unsubscribe share one lock, so a writer never lands in a list that was just dropped.
        var watcher = new Watcher(writer, terminalOnly);
        List<Watcher> watchers;
        lock (_subscriptionLock)
        {
            watchers = _watchers.GetOrAdd(executionId, _ => []);
            lock (watchers)
            {
                watchers.Add(watcher);
            }
        }

        Interlocked.Increment(ref _count);
        if (!terminalOnly)
        {
            Interlocked.Increment(ref _eventWatchers);
        }

        return new Subscription(this, executionId, watchers, watcher);
    }

    private sealed class Watcher(ChannelWriter<WorkflowEvent> writer, bool terminalOnly)
    {
        public ChannelWriter<WorkflowEvent> Writer { get; } = writer;

        public bool TerminalOnly { get; } = terminalOnly;
    }

    private sealed class Subscription(ExecutionEventHub hub, Guid id, List<Watcher> watchers, Watcher watcher) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            lock (hub._subscriptionLock)
            {
                lock (watchers)
                {
                    watchers.Remove(watcher);
                    if (watchers.Count == 0)
                    {
                        hub._watchers.TryRemove(new KeyValuePair<Guid, List<Watcher>>(id, watchers));
                    }
                }
            }

            Interlocked.Decrement(ref hub._count);
            if (!watcher.TerminalOnly)
            {
                Interlocked.Decrement(ref hub._eventWatchers);
            }
        }
    }
}
