using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Nova.Workflow;

/// <summary>
/// User code that runs a node with JSON in and out. Implementations are resolved from a DI scope
/// per node run, so they take their dependencies by constructor.
/// </summary>
public interface INodeHandler
{
    /// <summary>Runs the node. Return its output (or null). Throw to fail; see <see cref="TransientNodeException"/> and friends.</summary>
    ValueTask<JsonElement?> ExecuteAsync(NodeContext context, CancellationToken cancellationToken);
}

/// <summary>
/// User code that runs a node with typed input and output (System.Text.Json). The input is the
/// node's <see cref="NodeContext.Input"/> deserialized to <typeparamref name="TIn"/>; a failure to
/// deserialize fails the node permanently with a <see cref="NodeInputException"/>.
/// </summary>
public interface INodeHandler<in TIn, TOut>
{
    /// <summary>Runs the node.</summary>
    ValueTask<TOut> ExecuteAsync(TIn input, NodeContext context, CancellationToken cancellationToken);
}

/// <summary>Everything a handler knows about the node run it executes.</summary>
public sealed class NodeContext
{
    private readonly Action<double, string?>? _progress;
    private readonly JsonElement _input;
    // A node with several parents: its input object is built from them when first read (many handlers never read it).
    private readonly Func<NodeContext, JsonElement>? _buildInput;
    private StrongBox<JsonElement>? _built;

    internal NodeContext(
        Guid executionId,
        string nodeId,
        int attempt,
        JsonElement workflowInput,
        IReadOnlyDictionary<string, JsonElement> parentOutputs,
        JsonElement input,
        Func<NodeContext, JsonElement>? buildInput,
        JsonElement? config,
        ILogger logger,
        Action<double, string?>? progress,
        CancellationToken cancellationToken)
    {
        ExecutionId = executionId;
        NodeId = nodeId;
        Attempt = attempt;
        WorkflowInput = workflowInput;
        ParentOutputs = parentOutputs;
        _input = input;
        _buildInput = buildInput;
        Config = config;
        Logger = logger;
        _progress = progress;
        CancellationToken = cancellationToken;
    }

    /// <summary>The execution.</summary>
    public Guid ExecutionId { get; }

    /// <summary>The node.</summary>
    public string NodeId { get; }

    /// <summary>The attempt (1-based).</summary>
    public int Attempt { get; internal set; }

    /// <summary>The workflow input.</summary>
    public JsonElement WorkflowInput { get; }

    /// <summary>Outputs of the succeeded parents, by node id.</summary>
    public IReadOnlyDictionary<string, JsonElement> ParentOutputs { get; }

    /// <summary>
    /// The node's input: the workflow input for a root, the parent's output for a node with one parent,
    /// and an object of parent outputs by node id for a node with several.
    /// </summary>
    public JsonElement Input => _buildInput is null ? _input : (Volatile.Read(ref _built) ?? Build()).Value;

    /// <summary>The node's configuration from the definition.</summary>
    public JsonElement? Config { get; }

    /// <summary>A logger with the execution and node ids in scope.</summary>
    public ILogger Logger { get; }

    /// <summary>Cancelled on soft time limit, cancel, lease loss or shutdown.</summary>
    public CancellationToken CancellationToken { get; internal set; }

    /// <summary>
    /// A key that is the same for every attempt and redelivery of this node in this execution:
    /// pass it to external systems to make side effects exactly-once.
    /// </summary>
    public string IdempotencyKey => $"{ExecutionId:N}:{NodeId}";

    private StrongBox<JsonElement> Build()
    {
        Interlocked.CompareExchange(ref _built, new StrongBox<JsonElement>(_buildInput!(this)), null);
        return _built;
    }

    /// <summary>Reports progress within the node (0–100) to watchers.</summary>
    public void ReportProgress(double percent, string? message = null) => _progress?.Invoke(Math.Clamp(percent, 0, 100), message);
}

/// <summary>Throw for a failure that may pass on retry (timeouts, throttling, network).</summary>
public sealed class TransientNodeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TransientNodeException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public TransientNodeException(string message, Exception innerException) : base(message, innerException)
    {
    }
}

/// <summary>Throw for a failure that will not pass on retry (bad data, missing resource): the node fails now.</summary>
public sealed class PermanentNodeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PermanentNodeException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public PermanentNodeException(string message, Exception innerException) : base(message, innerException)
    {
    }
}

/// <summary>Throw when a person must decide: the node awaits review and the execution pauses until resumed with a decision.</summary>
public sealed class NeedsReviewException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NeedsReviewException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public NeedsReviewException(string message, Exception innerException) : base(message, innerException)
    {
    }
}

/// <summary>A typed handler's input did not deserialize to its input type. Permanent.</summary>
public sealed class NodeInputException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NodeInputException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public NodeInputException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
