using System.Text.Json;

namespace Nova.Workflow;

/// <summary>The state of an execution.</summary>
public enum ExecutionStatus
{
    /// <summary>Created, nothing has run yet.</summary>
    Pending,
    /// <summary>Nodes are queued or running.</summary>
    Running,
    /// <summary>No new node starts until resumed (by request or because a node awaits review).</summary>
    Paused,
    /// <summary>Every node finished and none failed.</summary>
    Succeeded,
    /// <summary>A node failed for good.</summary>
    Failed,
    /// <summary>Canceled on request.</summary>
    Canceled,
}

/// <summary>The state of one node in one execution.</summary>
public enum NodeStatus
{
    /// <summary>Waiting for its parents.</summary>
    Pending,
    /// <summary>Ready; a job is (or will be) in the queue.</summary>
    Queued,
    /// <summary>A worker holds it.</summary>
    Running,
    /// <summary>Finished with an output.</summary>
    Succeeded,
    /// <summary>Failed for good.</summary>
    Failed,
    /// <summary>Not run: a branch not taken or its trigger rule did not hold.</summary>
    Skipped,
    /// <summary>Canceled before it finished.</summary>
    Canceled,
    /// <summary>The handler asked for a person; the execution is paused until resumed with a decision.</summary>
    AwaitingReview,
}

/// <summary>How an error is treated.</summary>
public enum ErrorClass
{
    /// <summary>Retry with backoff while attempts remain.</summary>
    Transient,
    /// <summary>Fail now.</summary>
    Permanent,
    /// <summary>Pause the execution until a person decides.</summary>
    NeedsReview,
}

/// <summary>What went wrong: the exception type name and message (never a stack trace or payload).</summary>
/// <param name="Type">The exception's type name.</param>
/// <param name="Message">The exception's message.</param>
/// <param name="Class">How it was classified.</param>
public sealed record NodeError(string Type, string Message, ErrorClass Class);

/// <summary>How far an execution is.</summary>
/// <param name="Done">Nodes in a final state.</param>
/// <param name="Total">All nodes.</param>
public readonly record struct ExecutionProgress(int Done, int Total)
{
    /// <summary>Done as a percentage (0–100).</summary>
    public double Percent => Total == 0 ? 100 : Done * 100.0 / Total;
}

/// <summary>One node as seen in a snapshot.</summary>
public sealed record NodeSnapshot
{
    /// <summary>The node id.</summary>
    public required string Id { get; init; }
    /// <summary>Its handler name.</summary>
    public required string Handler { get; init; }
    /// <summary>Its status.</summary>
    public required NodeStatus Status { get; init; }
    /// <summary>The current (or last) attempt; 0 before the first.</summary>
    public int Attempt { get; init; }
    /// <summary>When the current attempt started.</summary>
    public DateTimeOffset? StartedAt { get; init; }
    /// <summary>When it reached a final state.</summary>
    public DateTimeOffset? EndedAt { get; init; }
    /// <summary>The worker that runs or ran it.</summary>
    public string? WorkerId { get; init; }
    /// <summary>Its output once succeeded.</summary>
    public JsonElement? Output { get; init; }
    /// <summary>Its last error.</summary>
    public NodeError? Error { get; init; }
}

/// <summary>A point-in-time view of an execution.</summary>
public sealed record ExecutionSnapshot
{
    /// <summary>The execution id (time-ordered).</summary>
    public required Guid Id { get; init; }
    /// <summary>The workflow name.</summary>
    public required string Workflow { get; init; }
    /// <summary>The pinned workflow version.</summary>
    public required int Version { get; init; }
    /// <summary>The status.</summary>
    public required ExecutionStatus Status { get; init; }
    /// <summary>When it was created.</summary>
    public required DateTimeOffset CreatedAt { get; init; }
    /// <summary>When it reached a final state.</summary>
    public DateTimeOffset? EndedAt { get; init; }
    /// <summary>The workflow input.</summary>
    public JsonElement Input { get; init; }
    /// <summary>The result: the single leaf's output, or an object of leaf outputs by node id.</summary>
    public JsonElement? Output { get; init; }
    /// <summary>The error that failed it.</summary>
    public NodeError? Error { get; init; }
    /// <summary>Done / total nodes.</summary>
    public required ExecutionProgress Progress { get; init; }
    /// <summary>Every node, in declaration order.</summary>
    public required IReadOnlyList<NodeSnapshot> Nodes { get; init; }

    /// <summary>True once the execution is Succeeded, Failed or Canceled.</summary>
    public bool IsFinished => Status is ExecutionStatus.Succeeded or ExecutionStatus.Failed or ExecutionStatus.Canceled;

    /// <summary>The nodes running right now.</summary>
    public IEnumerable<NodeSnapshot> RunningNodes => Nodes.Where(n => n.Status == NodeStatus.Running);
}

/// <summary>A short view of an execution for lists.</summary>
/// <param name="Id">The execution id.</param>
/// <param name="Workflow">The workflow name.</param>
/// <param name="Status">The status.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="AwaitingReview">Nodes awaiting a review decision.</param>
public sealed record ExecutionSummary(Guid Id, string Workflow, ExecutionStatus Status, DateTimeOffset CreatedAt, IReadOnlyList<string> AwaitingReview);

/// <summary>How an attempt ended, in the history.</summary>
public enum NodeRunStatus
{
    /// <summary>Succeeded.</summary>
    Succeeded,
    /// <summary>Failed and will be retried.</summary>
    Retrying,
    /// <summary>Failed for good.</summary>
    Failed,
    /// <summary>Abandoned at the hard time limit.</summary>
    TimedOut,
    /// <summary>Its worker stopped heartbeating (crashed or frozen); the node ran again elsewhere.</summary>
    Lost,
    /// <summary>Asked for a review.</summary>
    AwaitingReview,
    /// <summary>Canceled while running.</summary>
    Canceled,
}

/// <summary>One attempt of one node: an entry of the execution's history ("chain of work").</summary>
public sealed record NodeRunRecord
{
    /// <summary>The execution.</summary>
    public required Guid ExecutionId { get; init; }
    /// <summary>The node.</summary>
    public required string NodeId { get; init; }
    /// <summary>The handler name.</summary>
    public required string Handler { get; init; }
    /// <summary>The attempt (1-based).</summary>
    public required int Attempt { get; init; }
    /// <summary>How it ended.</summary>
    public required NodeRunStatus Status { get; init; }
    /// <summary>When it started.</summary>
    public required DateTimeOffset StartedAt { get; init; }
    /// <summary>When it ended.</summary>
    public required DateTimeOffset EndedAt { get; init; }
    /// <summary>The worker that ran it.</summary>
    public string? WorkerId { get; init; }
    /// <summary>The exception type, if it failed.</summary>
    public string? ErrorType { get; init; }
    /// <summary>The exception message, if it failed.</summary>
    public string? ErrorMessage { get; init; }

    /// <summary>End minus start.</summary>
    public TimeSpan Duration => EndedAt - StartedAt;
}

/// <summary>Runs, failures and durations of one handler over a time window.</summary>
/// <param name="Handler">The handler name.</param>
/// <param name="Runs">Attempts started in the window.</param>
/// <param name="Failures">Attempts that did not succeed (retrying, failed, timed out, lost).</param>
/// <param name="MaxDuration">The longest attempt.</param>
/// <param name="AverageDuration">The mean attempt duration.</param>
public sealed record HandlerStats(string Handler, int Runs, int Failures, TimeSpan MaxDuration, TimeSpan AverageDuration)
{
    /// <summary>Failures / runs (0–1).</summary>
    public double FailureRate => Runs == 0 ? 0 : (double)Failures / Runs;
}

/// <summary>A transition of an execution, as streamed by <see cref="IWorkflowClient.WatchAsync"/>.</summary>
/// <param name="Type">
/// <c>execution.started|paused|resumed|succeeded|failed|canceled</c> or
/// <c>node.queued|started|succeeded|retrying|failed|skipped|canceled|awaiting_review|progress</c>.
/// </param>
/// <param name="ExecutionId">The execution.</param>
/// <param name="NodeId">The node, for node events.</param>
/// <param name="Attempt">The node's attempt, for node events.</param>
/// <param name="Timestamp">When it happened.</param>
/// <param name="Progress">The execution's progress after it.</param>
/// <param name="Message">An error message or a progress note.</param>
public sealed record WorkflowEvent(string Type, Guid ExecutionId, string? NodeId, int Attempt, DateTimeOffset Timestamp, ExecutionProgress Progress, string? Message = null)
{
    /// <summary>True for the event that ends an execution.</summary>
    public bool IsTerminal => EventTypes.IsTerminal(Type);

    /// <summary>Whether <see cref="Type"/> matches a pattern such as <c>node.*</c> or <c>*</c>.</summary>
    public bool Matches(string pattern) => pattern == "*" || (pattern.EndsWith(".*", StringComparison.Ordinal)
        ? Type.StartsWith(pattern.AsSpan(0, pattern.Length - 1), StringComparison.Ordinal)
        : string.Equals(Type, pattern, StringComparison.Ordinal));
}

/// <summary>The event type names.</summary>
public static class EventTypes
{
#pragma warning disable CS1591 // names say it all
    public const string ExecutionStarted = "execution.started";
    public const string ExecutionPaused = "execution.paused";
    public const string ExecutionResumed = "execution.resumed";
    public const string ExecutionSucceeded = "execution.succeeded";
    public const string ExecutionFailed = "execution.failed";
    public const string ExecutionCanceled = "execution.canceled";
    public const string NodeQueued = "node.queued";
    public const string NodeStarted = "node.started";
    public const string NodeSucceeded = "node.succeeded";
    public const string NodeRetrying = "node.retrying";
    public const string NodeFailed = "node.failed";
    public const string NodeSkipped = "node.skipped";
    public const string NodeCanceled = "node.canceled";
    public const string NodeAwaitingReview = "node.awaiting_review";
    public const string NodeProgress = "node.progress";
#pragma warning restore CS1591

    /// <summary>Whether an event of this type ends its execution.</summary>
    internal static bool IsTerminal(string type) => type is ExecutionSucceeded or ExecutionFailed or ExecutionCanceled;
}

/// <summary>A person's decision on a node that awaits review.</summary>
public sealed record ReviewDecision
{
    private ReviewDecision(bool approved, JsonElement? output, string? reason)
    {
        Approved = approved;
        Output = output;
        Reason = reason;
    }

    /// <summary>True to approve.</summary>
    public bool Approved { get; }

    /// <summary>The node's output when approved.</summary>
    public JsonElement? Output { get; }

    /// <summary>Why it was rejected.</summary>
    public string? Reason { get; }

    /// <summary>Approves: the node succeeds with <paramref name="output"/> and the execution continues.</summary>
    public static ReviewDecision Approve(JsonElement? output = null) => new(true, output, null);

    /// <summary>Rejects: the node fails with <paramref name="reason"/>.</summary>
    public static ReviewDecision Reject(string reason) => new(false, null, reason);
}
