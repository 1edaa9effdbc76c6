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
    ValueTask<IAsyncDisposable> SubscribeAsync(Guid executionId, ChannelWriter<WorkflowEvent> writer, CancellationToken cancellationToken);
}

/// <summary>In-process fan-out of transition events to watchers of an execution.</summary>
internal sealed class ExecutionEventHub
{
    private readonly ConcurrentDictionary<Guid, List<ChannelWriter<WorkflowEvent>>> _watchers = new();
    private readonly Lock _subscriptionLock = new();
    private int _count;

    public bool HasWatchers => Volatile.Read(ref _count) > 0;

    public void Publish(IReadOnlyList<WorkflowEvent> events)
    {
        if (!HasWatchers)
        {
            return;
        }

        foreach (var e in events)
        {
            if (_watchers.TryGetValue(e.ExecutionId, out var writers))
            {
                lock (writers)
                {
                    foreach (var writer in writers)
                    {
                        writer.TryWrite(e);
                    }
                }
            }
        }
    }

    public IDisposable Subscribe(Guid executionId, ChannelWriter<WorkflowEvent> writer)
    {
        // Subscribe and unsubscribe share one lock, so a writer never lands in a list that was just dropped.
        List<ChannelWriter<WorkflowEvent>> writers;
        lock (_subscriptionLock)
        {
            writers = _watchers.GetOrAdd(executionId, _ => []);
            lock (writers)
            {
                writers.Add(writer);
            }
        }

        Interlocked.Increment(ref _count);
        return new Subscription(this, executionId, writers, writer);
    }

    private sealed class Subscription(ExecutionEventHub hub, Guid id, List<ChannelWriter<WorkflowEvent>> writers, ChannelWriter<WorkflowEvent> writer) : IDisposable
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
                lock (writers)
                {
                    writers.Remove(writer);
                    if (writers.Count == 0)
                    {
                        hub._watchers.TryRemove(new KeyValuePair<Guid, List<ChannelWriter<WorkflowEvent>>>(id, writers));
                    }
                }
            }

            Interlocked.Decrement(ref hub._count);
        }
    }
}
