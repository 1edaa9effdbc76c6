using System.Text.Json;

namespace Nova.Workflow;

/// <summary>
/// Fluent builder of a <see cref="WorkflowDefinition"/>:
/// <code>
/// var wf = new WorkflowBuilder("invoice")
///     .Node("fetch", "http.fetch")
///     .Node("parse", "invoice.parse", n => n.DependsOn("fetch").Retry(r => r with { MaxAttempts = 5 }))
///     .Build();
/// </code>
/// </summary>
public sealed class WorkflowBuilder
{
    private readonly string _name;
    private readonly List<NodeDefinition> _nodes = [];
    private readonly List<EdgeDefinition> _edges = [];
    private int _version = 1;
    private RetryPolicy? _defaultRetry;
    private FailureMode _failureMode;

    /// <summary>Starts a workflow named <paramref name="name"/>.</summary>
    public WorkflowBuilder(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        _name = name;
    }

    /// <summary>Sets the version (default 1).</summary>
    public WorkflowBuilder Version(int version)
    {
        _version = version;
        return this;
    }

    /// <summary>Sets the retry policy of nodes that set none.</summary>
    public WorkflowBuilder DefaultRetry(RetryPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        _defaultRetry = policy;
        return this;
    }

    /// <summary>Sets what happens when a node fails for good.</summary>
    public WorkflowBuilder OnFailure(FailureMode mode)
    {
        _failureMode = mode;
        return this;
    }

    /// <summary>Adds a node run by the handler registered as <paramref name="handler"/>.</summary>
    public WorkflowBuilder Node(string id, string handler, Action<NodeBuilder>? configure = null)
    {
        var node = new NodeBuilder(id, handler);
        configure?.Invoke(node);
        _nodes.Add(node.Build());
        foreach (var (parent, condition) in node.Parents)
        {
            _edges.Add(new EdgeDefinition(parent, id, condition));
        }

        return this;
    }

    /// <summary>Adds an edge <paramref name="source"/> → <paramref name="target"/>.</summary>
    public WorkflowBuilder Edge(string source, string target, EdgeCondition? condition = null)
    {
        _edges.Add(new EdgeDefinition(source, target, condition));
        return this;
    }

    /// <summary>Builds the immutable definition. Validation happens at registration and start.</summary>
    public WorkflowDefinition Build() => new(_name, _version, _nodes, _edges, _defaultRetry, _failureMode);
}

/// <summary>Settings of one node inside <see cref="WorkflowBuilder.Node"/>.</summary>
public sealed class NodeBuilder
{
    private NodeDefinition _node;

    internal NodeBuilder(string id, string handler) => _node = new NodeDefinition(id, handler);

    internal List<(string Parent, EdgeCondition? Condition)> Parents { get; } = [];

    /// <summary>Runs after each of <paramref name="parents"/>.</summary>
    public NodeBuilder DependsOn(params string[] parents)
    {
        foreach (var parent in parents)
        {
            Parents.Add((parent, null));
        }

        return this;
    }

    /// <summary>Runs after <paramref name="parent"/> only when <paramref name="condition"/> holds on its output.</summary>
    public NodeBuilder DependsOn(string parent, EdgeCondition condition)
    {
        ArgumentNullException.ThrowIfNull(condition);
        Parents.Add((parent, condition));
        return this;
    }

    /// <summary>Runs after <paramref name="parent"/> only when <paramref name="predicate"/> holds on its output.</summary>
    public NodeBuilder DependsOn(string parent, Func<JsonElement?, bool> predicate) => DependsOn(parent, EdgeCondition.When(predicate));

    /// <summary>Sets the JSON configuration handed to the handler.</summary>
    public NodeBuilder Config(object config)
    {
        _node = _node with { Config = config is JsonElement e ? e : JsonSerializer.SerializeToElement(config) };
        return this;
    }

    /// <summary>Sets the retry policy (starting from the default policy).</summary>
    public NodeBuilder Retry(Func<RetryPolicy, RetryPolicy> configure)
    {
        _node = _node with { Retry = configure(_node.Retry ?? RetryPolicy.Default) };
        return this;
    }

    /// <summary>Sets the retry policy.</summary>
    public NodeBuilder Retry(RetryPolicy policy)
    {
        _node = _node with { Retry = policy };
        return this;
    }

    /// <summary>Sets the soft and optionally the hard time limit.</summary>
    public NodeBuilder TimeLimit(TimeSpan? soft, TimeSpan? hard = null)
    {
        _node = _node with { SoftTimeLimit = soft, HardTimeLimit = hard };
        return this;
    }

    /// <summary>Sends the node's jobs to <paramref name="queue"/>, with a priority from 0 to 9 (higher first).</summary>
    public NodeBuilder Queue(string queue, int priority = WorkflowDefinition.DefaultPriority)
    {
        _node = _node with { Queue = queue, Priority = priority };
        return this;
    }

    /// <summary>Sets the priority (0–9, higher first within the queue).</summary>
    public NodeBuilder Priority(int priority)
    {
        _node = _node with { Priority = priority };
        return this;
    }

    /// <summary>Limits starts of this node's handler across all workers.</summary>
    public NodeBuilder RateLimit(int limit, TimeSpan period)
    {
        _node = _node with { RateLimit = new RateLimit(limit, period) };
        return this;
    }

    /// <summary>Sets the trigger rule.</summary>
    public NodeBuilder Trigger(TriggerRule rule)
    {
        _node = _node with { TriggerRule = rule };
        return this;
    }

    internal NodeDefinition Build() => _node;
}
