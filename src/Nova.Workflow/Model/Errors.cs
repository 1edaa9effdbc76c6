namespace Nova.Workflow;

/// <summary>What kind of problem a definition has.</summary>
public enum ValidationErrorCode
{
    /// <summary>The workflow has no nodes.</summary>
    EmptyWorkflow,
    /// <summary>Two nodes share an id.</summary>
    DuplicateNodeId,
    /// <summary>An edge names a node that does not exist.</summary>
    UnknownEdgeNode,
    /// <summary>A node depends on itself.</summary>
    SelfLoop,
    /// <summary>The same edge is declared twice.</summary>
    DuplicateEdge,
    /// <summary>The graph has a cycle.</summary>
    Cycle,
    /// <summary>A node's handler is not registered.</summary>
    UnknownHandler,
    /// <summary>A node can never run (every path to it passes through a cycle).</summary>
    UnreachableNode,
    /// <summary>A setting is out of range.</summary>
    InvalidSetting,
}

/// <summary>One problem of a definition.</summary>
/// <param name="Code">The kind of problem.</param>
/// <param name="Message">What is wrong and how to fix it.</param>
public sealed record WorkflowValidationError(ValidationErrorCode Code, string Message);

/// <summary>A workflow definition is invalid; <see cref="Errors"/> lists every problem found.</summary>
public sealed class WorkflowValidationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WorkflowValidationException(string workflow, IReadOnlyList<WorkflowValidationError> errors)
        : base($"Workflow '{workflow}' is invalid:{Environment.NewLine}" + string.Join(Environment.NewLine, errors.Select(e => "  - " + e.Message)))
    {
        Workflow = workflow;
        Errors = errors;
    }

    /// <summary>The workflow's name.</summary>
    public string Workflow { get; }

    /// <summary>Every problem found.</summary>
    public IReadOnlyList<WorkflowValidationError> Errors { get; }
}

/// <summary>No workflow with this name (and version) is registered.</summary>
public sealed class WorkflowNotFoundException(string workflow, int? version)
    : Exception(version is null
        ? $"No workflow named '{workflow}' is registered; register it with AddWorkflow."
        : $"Workflow '{workflow}' has no registered version {version}.")
{
    /// <summary>The requested name.</summary>
    public string Workflow { get; } = workflow;

    /// <summary>The requested version, if any.</summary>
    public int? Version { get; } = version;
}

/// <summary>No execution with this id exists (it never did, or retention removed it).</summary>
public sealed class ExecutionNotFoundException(Guid executionId)
    : Exception($"Execution {executionId} does not exist (or has expired).")
{
    /// <summary>The requested id.</summary>
    public Guid ExecutionId { get; } = executionId;
}

/// <summary>The operation does not apply to the execution in its current state (e.g. resuming a running execution).</summary>
public sealed class InvalidExecutionStateException(Guid executionId, string message) : Exception(message)
{
    /// <summary>The execution.</summary>
    public Guid ExecutionId { get; } = executionId;
}

/// <summary>A payload (input, output or definition) is over the configured size limit or is not valid JSON.</summary>
public sealed class InvalidPayloadException(string message) : Exception(message);

/// <summary>
/// <see cref="IWorkflowClient.RunAsync"/> finished with the execution not succeeded; <see cref="Snapshot"/> has the details.
/// </summary>
public sealed class WorkflowExecutionException(ExecutionSnapshot snapshot)
    : Exception($"Execution {snapshot.Id} of '{snapshot.Workflow}' ended {snapshot.Status}: {snapshot.Error?.Message ?? "no error recorded"}")
{
    /// <summary>The execution as it ended.</summary>
    public ExecutionSnapshot Snapshot { get; } = snapshot;
}
