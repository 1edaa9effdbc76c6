using System.Text.Json;

namespace Nova.Workflow.Storage;

/// <summary>
/// The source of truth: executions with their pinned plan, node states, outputs and history.
/// Every change is a conditional transition checked against the node's status, attempt and run
/// token, so a stale or duplicate worker cannot overwrite a newer truth. Completing a node and
/// deciding which children became ready is one atomic step.
/// </summary>
public interface IStateStore
{
    /// <summary>
    /// Creates the execution with its nodes and marks the roots Queued, atomically. With an
    /// idempotency key already used, creates nothing and returns the existing id.
    /// </summary>
    ValueTask<CreateExecutionResult> CreateExecutionAsync(NewExecution execution, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves the job's node from Queued to Running under the job's lease token (or takes over a
    /// Running node whose lease lapsed), applying the node's rate limit. Says why not otherwise.
    /// </summary>
    ValueTask<StartNodeResult> TryStartNodeAsync(StartNodeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Extends the state leases of running attempts; per job, false when the attempt is no longer this worker's (lost, canceled, finished).</summary>
    ValueTask<IReadOnlyList<bool>> HeartbeatAsync(IReadOnlyList<LeasedJob> runs, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>
    /// Records an attempt's outcome if the run token still holds, and in the same atomic step
    /// decides the children (queued, skipped) and the execution's final state. A rejected
    /// completion changes nothing.
    /// </summary>
    ValueTask<CompleteNodeResult> CompleteNodeAsync(CompleteNodeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Gives a running attempt back (graceful shutdown): Running → Queued under the same attempt.</summary>
    ValueTask<bool> ReleaseNodeAsync(LeasedJob run, CancellationToken cancellationToken = default);

    /// <summary>Pauses: no new node starts, running ones finish.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    /// <exception cref="InvalidExecutionStateException">It is not running.</exception>
    ValueTask<StoreTransition> PauseAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Resumes a paused execution; a node awaiting review needs <paramref name="decision"/>.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    /// <exception cref="InvalidExecutionStateException">It is not paused, or a review decision is missing.</exception>
    ValueTask<StoreTransition> ResumeAsync(Guid executionId, ReviewDecision? decision, CancellationToken cancellationToken = default);

    /// <summary>Cancels: every unfinished node becomes Canceled and running attempts lose their lease. A finished execution is left as it is.</summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    ValueTask<StoreTransition> CancelAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Re-runs failed and canceled nodes (or only <paramref name="nodeId"/>) and everything downstream of them,
    /// keeping succeeded outputs elsewhere.
    /// </summary>
    /// <exception cref="ExecutionNotFoundException">No such execution.</exception>
    /// <exception cref="InvalidExecutionStateException">Nothing to retry.</exception>
    ValueTask<StoreTransition> RetryAsync(Guid executionId, string? nodeId, CancellationToken cancellationToken = default);

    /// <summary>A snapshot, or null if there is no such execution.</summary>
    ValueTask<ExecutionSnapshot?> GetExecutionAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Every recorded attempt of the execution, in order; null if there is no such execution.</summary>
    ValueTask<IReadOnlyList<NodeRunRecord>?> GetHistoryAsync(Guid executionId, CancellationToken cancellationToken = default);

    /// <summary>Executions matching the query, newest first.</summary>
    ValueTask<IReadOnlyList<ExecutionSummary>> ListExecutionsAsync(ExecutionQuery query, CancellationToken cancellationToken = default);

    /// <summary>Runs, failure rate and durations per handler for attempts started since <paramref name="since"/>.</summary>
    ValueTask<IReadOnlyList<HandlerStats>> GetHandlerStatsAsync(DateTimeOffset since, CancellationToken cancellationToken = default);

    /// <summary>
    /// Jobs for nodes that may have no live job: Queued since before <paramref name="queuedBefore"/> in a running
    /// execution, or Running with a lapsed lease. The sweeper re-enqueues them (the queue drops duplicates).
    /// </summary>
    ValueTask<IReadOnlyList<Job>> FindStrandedAsync(DateTimeOffset queuedBefore, int max, CancellationToken cancellationToken = default);

    /// <summary>Deletes executions (and their history) that ended before <paramref name="endedBefore"/>; returns how many.</summary>
    ValueTask<int> PurgeFinishedAsync(DateTimeOffset endedBefore, CancellationToken cancellationToken = default);

    /// <summary>The store's clock (lease arithmetic is done on it).</summary>
    ValueTask<DateTimeOffset> GetTimeAsync(CancellationToken cancellationToken = default);
}

/// <summary>What to create.</summary>
/// <param name="Id">The new execution's id.</param>
/// <param name="Plan">The pinned plan.</param>
/// <param name="Input">The workflow input.</param>
/// <param name="IdempotencyKey">Starts with the same key return the same execution.</param>
/// <param name="TraceParent">The starting activity's trace context, copied into root jobs.</param>
public sealed record NewExecution(Guid Id, ExecutionPlan Plan, JsonElement Input, string? IdempotencyKey, string? TraceParent);

/// <summary>Jobs to enqueue and events to publish after a transition.</summary>
/// <param name="Jobs">Jobs the transition made ready (already in their queues when <see cref="JobsEnqueued"/>).</param>
/// <param name="Events">What changed.</param>
/// <param name="JobsEnqueued">True when the store already enqueued the jobs in the same atomic step.</param>
public sealed record StoreTransition(IReadOnlyList<Job> Jobs, IReadOnlyList<WorkflowEvent> Events, bool JobsEnqueued = false)
{
    /// <summary>Nothing happened.</summary>
    public static StoreTransition None { get; } = new([], []);
}

/// <summary>The outcome of <see cref="IStateStore.CreateExecutionAsync"/>.</summary>
/// <param name="ExecutionId">The new or existing execution.</param>
/// <param name="Created">False when an idempotency key matched an existing execution.</param>
/// <param name="Transition">Root jobs and events.</param>
public sealed record CreateExecutionResult(Guid ExecutionId, bool Created, StoreTransition Transition);

/// <summary>A request to start the node a job delivers.</summary>
/// <param name="Job">The leased job; its lease token becomes the run token.</param>
/// <param name="WorkerId">The worker.</param>
/// <param name="Lease">How long the state lease lasts without a heartbeat.</param>
/// <param name="MaxWorkerLosses">After this many lapsed leases in a row the node is failed and dead-lettered.</param>
public sealed record StartNodeRequest(LeasedJob Job, string WorkerId, TimeSpan Lease, int MaxWorkerLosses);

/// <summary>Why a start was or was not granted.</summary>
public enum StartOutcome
{
    /// <summary>The node is now Running under this job's token.</summary>
    Started,
    /// <summary>The job no longer matches the state (finished, retried, canceled, unknown): drop it.</summary>
    Stale,
    /// <summary>The node is running under another live lease: give the job back until that lease would lapse (<see cref="StartNodeResult.RetryAfter"/>).</summary>
    Duplicate,
    /// <summary>The execution is paused: drop the job; resume enqueues it again.</summary>
    Paused,
    /// <summary>The handler's rate limit is used up: release the job until <see cref="StartNodeResult.RetryAfter"/>.</summary>
    RateLimited,
    /// <summary>Workers died on this node too many times: it failed and belongs in the dead letters.</summary>
    WorkerLost,
}

/// <summary>The answer to <see cref="IStateStore.TryStartNodeAsync"/>.</summary>
public sealed record StartNodeResult
{
    /// <summary>The outcome.</summary>
    public required StartOutcome Outcome { get; init; }
    /// <summary>For <see cref="StartOutcome.RateLimited"/>: how long until a slot frees; for <see cref="StartOutcome.Duplicate"/>: until the other lease lapses.</summary>
    public TimeSpan RetryAfter { get; init; }
    /// <summary>The pinned plan (when started).</summary>
    public ExecutionPlan? Plan { get; init; }
    /// <summary>The workflow input (when started).</summary>
    public JsonElement WorkflowInput { get; init; }
    /// <summary>Outputs of the node's succeeded parents by node id (when started).</summary>
    public IReadOnlyDictionary<string, JsonElement> ParentOutputs { get; init; } = EmptyOutputs;
    /// <summary>Events and jobs the start caused (e.g. a worker-lost failure).</summary>
    public StoreTransition Transition { get; init; } = StoreTransition.None;

    internal static readonly IReadOnlyDictionary<string, JsonElement> EmptyOutputs = new Dictionary<string, JsonElement>();
}

/// <summary>How an attempt ended, reported by the worker.</summary>
public enum AttemptOutcome
{
    /// <summary>It produced an output.</summary>
    Succeeded,
    /// <summary>It failed; <see cref="CompleteNodeRequest.RetryAt"/> says whether to retry.</summary>
    Failed,
    /// <summary>It asked for a review.</summary>
    AwaitingReview,
}

/// <summary>The worker's report of an attempt.</summary>
public sealed record CompleteNodeRequest
{
    /// <summary>The job that started the attempt (execution, node, attempt and run token).</summary>
    public required LeasedJob Run { get; init; }
    /// <summary>The outcome.</summary>
    public required AttemptOutcome Outcome { get; init; }
    /// <summary>The attempt number that produced the outcome (higher than the job's after in-process retries).</summary>
    public required int FinalAttempt { get; init; }
    /// <summary>When the final attempt started.</summary>
    public required DateTimeOffset StartedAt { get; init; }
    /// <summary>The output on success.</summary>
    public JsonElement? Output { get; init; }
    /// <summary>Per outgoing edge of the node (in edge declaration order), whether its condition held; null when all did.</summary>
    public bool[]? TakenEdges { get; init; }
    /// <summary>The error on failure or review.</summary>
    public NodeError? Error { get; init; }
    /// <summary>True when the attempt was abandoned at its hard time limit.</summary>
    public bool TimedOut { get; init; }
    /// <summary>On failure, retry with a new attempt not before this time; null fails the node for good.</summary>
    public DateTimeOffset? RetryAt { get; init; }
    /// <summary>The execution's pinned plan, when the worker has it (lets a store enqueue ready children itself).</summary>
    public ExecutionPlan? Plan { get; init; }
    /// <summary>W3C trace context of the attempt, copied into the jobs it makes ready.</summary>
    public string? TraceParent { get; init; }
    /// <summary>Attempts that failed and were retried in process before the final one (history only).</summary>
    public IReadOnlyList<NodeRunRecord> PriorAttempts { get; init; } = [];
    /// <summary>
    /// When set, the worker offers to run one child this completion makes ready, on the completed job's queue, at once:
    /// a store that can do so in the same atomic step enqueues that child already leased to the worker, starts it, and
    /// returns it in <see cref="CompleteNodeResult.Next"/> (eager dispatch: no queue round trip per hop). Null: plain completion.
    /// </summary>
    public ContinuationOffer? Continue { get; init; }
}

/// <summary>A worker's offer to start a ready child itself (see <see cref="CompleteNodeRequest.Continue"/>).</summary>
/// <param name="WorkerId">The worker.</param>
/// <param name="Lease">How long the child's lease lasts without a heartbeat.</param>
/// <param name="MaxWorkerLosses">As in <see cref="StartNodeRequest"/>.</param>
public sealed record ContinuationOffer(string WorkerId, TimeSpan Lease, int MaxWorkerLosses);

/// <summary>A child a completion started for the completing worker: its leased job and its start.</summary>
/// <param name="Job">The child's job, enqueued already leased to the worker.</param>
/// <param name="Start">The child's start (always <see cref="StartOutcome.Started"/>).</param>
public sealed record ContinuedStart(LeasedJob Job, StartNodeResult Start);

/// <summary>The answer to <see cref="IStateStore.CompleteNodeAsync"/>.</summary>
/// <param name="Accepted">False when the run token no longer held: nothing was recorded.</param>
/// <param name="Transition">Ready children and events.</param>
/// <param name="JobAcknowledged">True when a fused store also acked the completed job in the same atomic step.</param>
public sealed record CompleteNodeResult(bool Accepted, StoreTransition Transition, bool JobAcknowledged = false)
{
    /// <summary>The child started for this worker in the same step, when <see cref="CompleteNodeRequest.Continue"/> was offered and taken.</summary>
    public ContinuedStart? Next { get; init; }

    internal static CompleteNodeResult Rejected { get; } = new(false, StoreTransition.None);

    /// <summary>Accepted, with nothing to enqueue or publish: most completions, so one instance serves them all.</summary>
    internal static CompleteNodeResult AcceptedQuietly { get; } = new(true, StoreTransition.None);
}

/// <summary>A filter for <see cref="IStateStore.ListExecutionsAsync"/>.</summary>
public sealed record ExecutionQuery
{
    /// <summary>Only executions in this status.</summary>
    public ExecutionStatus? Status { get; init; }
    /// <summary>Only executions with a node awaiting review.</summary>
    public bool AwaitingReview { get; init; }
    /// <summary>Only this workflow.</summary>
    public string? Workflow { get; init; }
    /// <summary>At most this many. Default 100.</summary>
    public int Limit { get; init; } = 100;
}

/// <summary>
/// A state store that reads an execution's status without its nodes: watchers check "finished yet?" often, and a full
/// snapshot of a large execution costs megabytes.
/// </summary>
internal interface IExecutionStatusReader
{
    /// <summary>The execution's status; null when there is no such execution.</summary>
    ValueTask<ExecutionStatus?> GetStatusAsync(Guid executionId, CancellationToken cancellationToken);
}

/// <summary>
/// A state store sharing one database with its queue: it claims jobs and starts their nodes in one transaction
/// (one commit for a whole batch of starts instead of one per node).
/// </summary>
internal interface IClaimingStateStore
{
    /// <summary>False when the queue lives elsewhere (mixed providers): use the queue's dequeue and start each node.</summary>
    bool CanClaim { get; }

    /// <summary>
    /// Leases up to <paramref name="maxCount"/> jobs of <paramref name="queue"/> and starts the nodes that plainly can start
    /// (queued, execution running, no rate limit). A job returned with a null start is leased but not started: run it the
    /// usual way (its start decides what to do with it).
    /// </summary>
    ValueTask<IReadOnlyList<(LeasedJob Job, StartNodeResult? Start)>> ClaimAndStartAsync(string queue, int maxCount, ContinuationOffer worker, CancellationToken cancellationToken);
}


/// <summary>
/// A state store that can start a new execution's root for a worker of the creating process in the same atomic step as the
/// create (eager start): the root skips the queue round trip and the claim, as a completion's child does with eager dispatch.
/// </summary>
internal interface IStartingStateStore
{
    /// <summary>False when this store cannot (a cluster, a queue in another database): create the usual way.</summary>
    bool CanStartOnCreate { get; }

    /// <summary>
    /// Creates the execution as <see cref="IStateStore.CreateExecutionAsync"/> does and, when <paramref name="queue"/> has no
    /// job waiting (nothing ready, due or lapsed), starts one root on that queue for <paramref name="worker"/>: enqueued
    /// already leased to it, its node Running. Null when no root was started (the roots are queued as usual).
    /// </summary>
    ValueTask<(CreateExecutionResult Result, ContinuedStart? Started)> CreateAndStartAsync(NewExecution execution, string queue, ContinuationOffer worker, CancellationToken cancellationToken);
}
