using System.Collections.Concurrent;
using System.Text.Json;

namespace Nova.Workflow.Conformance;

/// <summary>Records what handlers did, and lets a test hold a handler until it says go.</summary>
public sealed class Probe
{
    private readonly ConcurrentDictionary<string, int> _calls = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _gates = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _entered = new();
    private readonly ConcurrentQueue<string> _order = new();
    private int _running;
    private int _maxRunning;

    /// <summary>Calls per node id.</summary>
    public int Calls(string node) => _calls.GetValueOrDefault(node);

    /// <summary>The node ids of every call, in the order the handlers were entered.</summary>
    public IReadOnlyList<string> Order => [.. _order];

    /// <summary>All calls.</summary>
    public int TotalCalls => _calls.Values.Sum();

    /// <summary>Most handlers seen running at once.</summary>
    public int MaxConcurrency => Volatile.Read(ref _maxRunning);

    /// <summary>Makes handlers of <paramref name="node"/> wait for <see cref="Open"/>.</summary>
    public void Hold(string node) => _gates[node] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets held handlers of <paramref name="node"/> continue.</summary>
    public void Open(string node) => _gates.GetValueOrDefault(node)?.TrySetResult();

    /// <summary>Completes when a handler of <paramref name="node"/> has started.</summary>
    public Task Entered(string node) => _entered.GetOrAdd(node, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>A JSON handler that records the call, honours holds and returns <c>{ "node": id, "attempt": n }</c>.</summary>
    public async ValueTask<JsonElement?> Handle(NodeContext context, CancellationToken cancellationToken)
    {
        _calls.AddOrUpdate(context.NodeId, 1, (_, n) => n + 1);
        _order.Enqueue(context.NodeId);
        var running = Interlocked.Increment(ref _running);
        int max;
        while (running > (max = Volatile.Read(ref _maxRunning)) && Interlocked.CompareExchange(ref _maxRunning, running, max) != max)
        {
        }

        try
        {
            _entered.GetOrAdd(context.NodeId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            if (_gates.TryGetValue(context.NodeId, out var gate))
            {
                await gate.Task.WaitAsync(cancellationToken);
            }

            return JsonSerializer.SerializeToElement(new { node = context.NodeId, attempt = context.Attempt });
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }
}

/// <summary>Polling with a deadline: the only way tests wait for state.</summary>
public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until true; fails with <paramref name="what"/> after <paramref name="timeout"/> (default 20 s).</summary>
    public static async Task TrueAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new Xunit.Sdk.XunitException($"Timed out waiting for: {what}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Polls a synchronous condition.</summary>
    public static Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        TrueAsync(() => Task.FromResult(condition()), what, timeout);
}
