using Nova.Workflow.Storage;

namespace Nova.Workflow;

/// <summary>Options of one start.</summary>
public sealed record StartOptions
{
    /// <summary>Starts with the same key return the same execution id instead of starting again.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>The workflow version to start; the highest registered when null.</summary>
    public int? Version { get; init; }
}

/// <summary>Starts, watches and controls executions. Works in any host, with or without workers.</summary>
public interface IWorkflowClient
{
    /// <summary>Starts an execution and returns its id at once.</summary>
    /// <exception cref="WorkflowNotFoundException">No such workflow (or version) is registered.</exception>
    /// <exception cref="InvalidPayloadException">The input is over the size limit.</exception>
    Task<Guid> StartAsync(string workflow, object? input = null, StartOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Starts an execution and waits for it to finish.</summary>
    /// <exception cref="WorkflowExecutionException">It finished Failed or Canceled.</exception>
    /// <exception cref="TimeoutException">It did not finish within <paramref name="timeout"/>.</exception>
    Task<ExecutionSnapshot> RunAsync(string workflow, object? input = null, StartOptions? options = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default);

    /// <summary>The execution's current state.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    Task<ExecutionSnapshot> GetAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Waits until the execution is Succeeded, Failed or Canceled and returns its final state.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    /// <exception cref="TimeoutException">It did not finish within <paramref name="timeout"/>.</exception>
    Task<ExecutionSnapshot> WaitForCompletionAsync(Guid executionId, TimeSpan? timeout = null, CancellationToken cancellationToken = default);

    /// <summary>Streams the execution's events until it ends (the last event is the terminal one).</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    IAsyncEnumerable<WorkflowEvent> WatchAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Cancels: running handlers are signalled, unfinished nodes become Canceled. No-op on a finished execution.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    Task CancelAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Pauses: no new node starts; running ones finish.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    /// <exception cref="InvalidExecutionStateException">It is not running.</exception>
    Task PauseAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Resumes from the checkpoint (succeeded nodes never run again); a node awaiting review needs a decision.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    /// <exception cref="InvalidExecutionStateException">It is not paused, or a review decision is missing.</exception>
    Task ResumeAsync(Guid executionId, ReviewDecision? decision = null, CancellationToken cancellationToken = default);

    /// <summary>Re-runs the failed and canceled nodes and what follows them, keeping succeeded outputs.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    /// <exception cref="InvalidExecutionStateException">Nothing to retry.</exception>
    Task RetryAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Every attempt of every node of the execution (the chain of work).</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    Task<IReadOnlyList<NodeRunRecord>> GetHistoryAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Executions matching <paramref name="query"/>, newest first (e.g. those awaiting review).</summary>
    Task<IReadOnlyList<ExecutionSummary>> ListAsync(ExecutionQuery query, CancellationToken cancellationToken = default);

    /// <summary>Per handler: runs, failure rate, max and mean duration over the last <paramref name="window"/>.</summary>
    Task<IReadOnlyList<HandlerStats>> GetHandlerStatsAsync(TimeSpan window, CancellationToken cancellationToken = default);

    /// <summary>The dead-letter list, newest first.</summary>
    Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(int max = 100, CancellationToken cancellationToken = default);

    /// <summary>Runs a dead-lettered node again (its execution resumes); false if no such dead letter.</summary>
    Task<bool> RequeueDeadLetterAsync(Guid deadLetterId, CancellationToken cancellationToken = default);

    /// <summary>Deletes a dead letter; false if no such dead letter.</summary>
    Task<bool> PurgeDeadLetterAsync(Guid deadLetterId, CancellationToken cancellationToken = default);
}
