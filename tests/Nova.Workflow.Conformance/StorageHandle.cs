using Nova.Workflow.Storage;

namespace Nova.Workflow.Conformance;

/// <summary>What a provider legitimately does differently; the suite adapts its assertions.</summary>
[Flags]
public enum ProviderCapabilities
{
    /// <summary>Nothing special.</summary>
    None = 0,

    /// <summary>The queue stores serialized jobs, so a corrupt one can be injected and must be dead-lettered as undeserializable.</summary>
    RawJobStorage = 1,

    /// <summary>A completion can start a ready child for the completing worker in the same atomic step (eager dispatch).</summary>
    EagerDispatch = 2,

    /// <summary>A create can start a root for a worker of the creating process in the same atomic step (eager start).</summary>
    EagerStart = 4,
}

/// <summary>
/// One isolated storage instance for one test. Several hosts configured from the same handle share
/// it, the way worker processes share one Redis or PostgreSQL.
/// </summary>
public interface IStorageHandle : IAsyncDisposable
{
    /// <summary>What this provider can do.</summary>
    ProviderCapabilities Capabilities { get; }

    /// <summary>Points a host's Nova.Workflow at this storage.</summary>
    void Configure(NovaWorkflowBuilder builder);

    /// <summary>
    /// Puts a job the worker cannot use into <paramref name="queue"/>: corrupt bytes where the provider
    /// stores raw jobs, otherwise a job for an execution that does not exist.
    /// </summary>
    ValueTask InjectPoisonJobAsync(IJobQueue queue, string queueName, CancellationToken cancellationToken);
}
