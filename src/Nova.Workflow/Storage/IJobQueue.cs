namespace Nova.Workflow.Storage;

/// <summary>
/// A delivery of one attempt of one node. A job is never the truth: the state store decides
/// whether it still applies when it is dequeued.
/// </summary>
/// <param name="ExecutionId">The execution.</param>
/// <param name="NodeId">The node.</param>
/// <param name="Attempt">The attempt this job delivers.</param>
/// <param name="Queue">The queue it goes to.</param>
/// <param name="Priority">0–9, higher first.</param>
/// <param name="NotBefore">Not delivered before this time (retry backoff, rate-limit deferral).</param>
/// <param name="TraceParent">W3C trace context of the enqueuing activity.</param>
public sealed record Job(Guid ExecutionId, string NodeId, int Attempt, string Queue, int Priority, DateTimeOffset? NotBefore = null, string? TraceParent = null);

/// <summary>A job handed to one worker until <see cref="LeaseExpiresAt"/>; <see cref="LeaseToken"/> fences every later call.</summary>
/// <param name="Job">The job.</param>
/// <param name="LeaseToken">Unique to this delivery; the run token of the attempt it starts.</param>
/// <param name="DeliveryCount">How many times this job has been delivered (1 the first time).</param>
/// <param name="LeaseExpiresAt">When the lease lapses unless extended, on the store's clock.</param>
public sealed record LeasedJob(Job Job, Guid LeaseToken, int DeliveryCount, DateTimeOffset LeaseExpiresAt);

/// <summary>Why a job was dead-lettered.</summary>
public enum DeadLetterReason
{
    /// <summary>The node failed for good (permanent error or retries exhausted).</summary>
    Exhausted,
    /// <summary>Workers died on the node too many times in a row.</summary>
    WorkerLost,
    /// <summary>The stored job could not be read.</summary>
    Undeserializable,
}

/// <summary>An entry of the dead-letter list.</summary>
/// <param name="Id">Its id (for requeue and purge).</param>
/// <param name="ExecutionId">The execution, when known.</param>
/// <param name="NodeId">The node, when known.</param>
/// <param name="Attempt">The last attempt.</param>
/// <param name="Queue">The queue it came from.</param>
/// <param name="Reason">Why it is here.</param>
/// <param name="Error">The last error message.</param>
/// <param name="At">When it was dead-lettered.</param>
/// <param name="RawPayload">For undeserializable jobs, the stored text (truncated).</param>
public sealed record DeadLetter(Guid Id, Guid ExecutionId, string? NodeId, int Attempt, string Queue, DeadLetterReason Reason, string? Error, DateTimeOffset At, string? RawPayload = null);

/// <summary>
/// Delivery of jobs: enqueue with priority and not-before time, dequeue a batch with a lease,
/// heartbeat, ack, release with delay, dead-letter. Delivery is at-least-once. Every call that
/// names a leased job is fenced by its <see cref="LeasedJob.LeaseToken"/>: a stale token changes nothing.
/// </summary>
public interface IJobQueue
{
    /// <summary>
    /// Adds jobs. A job whose (execution, node, attempt) is already waiting or leased is not added
    /// again, so re-enqueueing (sweeper, resume) is safe.
    /// </summary>
    ValueTask EnqueueAsync(IReadOnlyList<Job> jobs, CancellationToken cancellationToken = default);

    /// <summary>
    /// Leases up to <paramref name="maxCount"/> ready jobs from <paramref name="queues"/>: higher priority
    /// first, except that every 10th job taken from a queue is its oldest ready job, whatever its priority,
    /// so low priorities cannot starve. Expired leases are delivered again. Returns an empty list when none is ready.
    /// </summary>
    ValueTask<IReadOnlyList<LeasedJob>> DequeueAsync(IReadOnlyList<string> queues, int maxCount, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>Returns when a job may be ready in <paramref name="queues"/> or after <paramref name="timeout"/>; a hint, not a promise.</summary>
    ValueTask WaitAsync(IReadOnlyList<string> queues, TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>Extends leases; the result says, per job, whether this worker still holds it.</summary>
    ValueTask<IReadOnlyList<bool>> ExtendLeasesAsync(IReadOnlyList<LeasedJob> jobs, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>Removes a delivered job for good. False if the lease was lost.</summary>
    ValueTask<bool> AckAsync(LeasedJob job, CancellationToken cancellationToken = default);

    /// <summary>Gives the job back, deliverable again after <paramref name="delay"/>, without counting a failed delivery.</summary>
    ValueTask<bool> ReleaseAsync(LeasedJob job, TimeSpan delay, CancellationToken cancellationToken = default);

    /// <summary>Records a dead letter and removes <paramref name="job"/> if given.</summary>
    ValueTask DeadLetterAsync(DeadLetter entry, LeasedJob? job, CancellationToken cancellationToken = default);

    /// <summary>Lists dead letters, newest first.</summary>
    ValueTask<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(int max, CancellationToken cancellationToken = default);

    /// <summary>Removes a dead letter and returns it (to requeue it); null if there is none with this id.</summary>
    ValueTask<DeadLetter?> TakeDeadLetterAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>Jobs waiting (ready or delayed) in <paramref name="queue"/>.</summary>
    ValueTask<long> GetDepthAsync(string queue, CancellationToken cancellationToken = default);
}
