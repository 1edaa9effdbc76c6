using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Nova.Workflow.Diagnostics;

/// <summary>The library's <see cref="ActivitySource"/> and <see cref="Meter"/>, both named <c>Nova.Workflow</c>.</summary>
internal static class NovaDiagnostics
{
    public const string Name = "Nova.Workflow";

    public static readonly ActivitySource ActivitySource = new(Name);

    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> NodesStarted = Meter.CreateCounter<long>("nova.workflow.nodes.started", description: "Node attempts started.");
    public static readonly Counter<long> NodesSucceeded = Meter.CreateCounter<long>("nova.workflow.nodes.succeeded", description: "Node attempts that succeeded.");
    public static readonly Counter<long> NodesFailed = Meter.CreateCounter<long>("nova.workflow.nodes.failed", description: "Nodes that failed for good.");
    public static readonly Counter<long> NodesRetried = Meter.CreateCounter<long>("nova.workflow.nodes.retried", description: "Attempts that failed and were retried.");
    public static readonly Histogram<double> NodeDuration = Meter.CreateHistogram<double>("nova.workflow.node.duration", unit: "s", description: "Node attempt duration.");

    private static readonly Dictionary<string, long> QueueDepths = new(StringComparer.Ordinal);

    static NovaDiagnostics()
    {
        Meter.CreateObservableGauge("nova.workflow.queue.depth", ObserveDepths, description: "Jobs waiting per queue (refreshed by the sweeper).");
    }

    public static void SetQueueDepth(string queue, long depth)
    {
        lock (QueueDepths)
        {
            QueueDepths[queue] = depth;
        }
    }

    private static IEnumerable<Measurement<long>> ObserveDepths()
    {
        lock (QueueDepths)
        {
            return [.. QueueDepths.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("queue", kv.Key)))];
        }
    }
}
