using System.Text.Json;

namespace Nova.Workflow;

/// <summary>One node of a workflow: an id unique in its workflow, the handler that runs it, and optional settings.</summary>
public sealed record NodeDefinition
{
    /// <summary>Creates a node.</summary>
    public NodeDefinition(string id, string handler)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentException.ThrowIfNullOrWhiteSpace(handler);
        Id = id;
        Handler = handler;
    }

    /// <summary>The node's id, unique within its workflow.</summary>
    public string Id { get; }

    /// <summary>The registered name of the handler that runs this node.</summary>
    public string Handler { get; }

    /// <summary>Free-form JSON configuration handed to the handler.</summary>
    public JsonElement? Config { get; init; }

    /// <summary>Overrides the workflow's default retry policy.</summary>
    public RetryPolicy? Retry { get; init; }

    /// <summary>After this long the handler's token is cancelled and a warning is logged.</summary>
    public TimeSpan? SoftTimeLimit { get; init; }

    /// <summary>After this long the attempt is abandoned and recorded as a timeout.</summary>
    public TimeSpan? HardTimeLimit { get; init; }

    /// <summary>The queue the node's jobs go to. Default <c>"default"</c>.</summary>
    public string Queue { get; init; } = WorkflowDefinition.DefaultQueue;

    /// <summary>0–9; higher runs first within a queue. Default 5.</summary>
    public int Priority { get; init; } = WorkflowDefinition.DefaultPriority;

    /// <summary>A rate limit for this node's starts, shared by every node with the same handler.</summary>
    public RateLimit? RateLimit { get; init; }

    /// <summary>When the node may run given its parents. Default <see cref="TriggerRule.AllSucceeded"/>.</summary>
    public TriggerRule TriggerRule { get; init; } = TriggerRule.AllSucceeded;
}

/// <summary>A dependency: <see cref="Target"/> runs after <see cref="Source"/>, optionally only when <see cref="Condition"/> holds.</summary>
/// <param name="Source">The parent node id.</param>
/// <param name="Target">The child node id.</param>
/// <param name="Condition">An optional condition on the parent's output.</param>
public sealed record EdgeDefinition(string Source, string Target, EdgeCondition? Condition = null);

/// <summary>
/// An immutable workflow: name, version, nodes and edges. Build one with <see cref="WorkflowBuilder"/>
/// or load it with <see cref="WorkflowJson"/>; it is validated when registered and before each start.
/// </summary>
public sealed class WorkflowDefinition
{
    /// <summary>The queue used when a node names none.</summary>
    public const string DefaultQueue = "default";

    /// <summary>The priority used when a node names none.</summary>
    public const int DefaultPriority = 5;

    /// <summary>Creates a definition from its parts (copied). Prefer <see cref="WorkflowBuilder"/>.</summary>
    public WorkflowDefinition(
        string name,
        int version,
        IEnumerable<NodeDefinition> nodes,
        IEnumerable<EdgeDefinition> edges,
        RetryPolicy? defaultRetry = null,
        FailureMode failureMode = FailureMode.FailFast)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(edges);
        Name = name;
        Version = version;
        Nodes = [.. nodes];
        Edges = [.. edges];
        DefaultRetry = defaultRetry ?? RetryPolicy.Default;
        FailureMode = failureMode;
    }

    /// <summary>The workflow's name, used to start it.</summary>
    public string Name { get; }

    /// <summary>The version; several versions of one name may be registered, the highest is started by default.</summary>
    public int Version { get; }

    /// <summary>The nodes in declaration order (the order ties are broken in).</summary>
    public IReadOnlyList<NodeDefinition> Nodes { get; }

    /// <summary>The edges.</summary>
    public IReadOnlyList<EdgeDefinition> Edges { get; }

    /// <summary>The retry policy of nodes that set none.</summary>
    public RetryPolicy DefaultRetry { get; }

    /// <summary>What happens when a node fails for good.</summary>
    public FailureMode FailureMode { get; }

    /// <inheritdoc />
    public override string ToString() => $"{Name} v{Version} ({Nodes.Count} nodes, {Edges.Count} edges)";
}
