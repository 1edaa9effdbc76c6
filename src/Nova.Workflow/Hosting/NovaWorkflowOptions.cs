using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Nova.Workflow;

/// <summary>Settings shared by the client and the workers. Validated at start.</summary>
public sealed class NovaWorkflowOptions
{
    /// <summary>How long a job and its node stay leased without a heartbeat. Default 15 s; must be at least 3 × <see cref="HeartbeatInterval"/>.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often workers extend the leases of running nodes. Default 5 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>After this many lost workers in a row on one node, the node fails and is dead-lettered. Default 3.</summary>
    public int MaxWorkerLosses { get; set; } = 3;

    /// <summary>Largest workflow input and node output, in UTF-8 bytes. Default 1 MiB.</summary>
    public int MaxPayloadBytes { get; set; } = 1024 * 1024;

    /// <summary>How often the sweeper looks for stranded nodes. Default 10 s.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A Queued node older than this with no live job is re-enqueued by the sweeper. Default 30 s.</summary>
    public TimeSpan StrandedAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long finished executions and their history are kept. Default 24 h.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How often retention cleanup runs. Default 5 minutes.</summary>
    public TimeSpan RetentionInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Eager dispatch: a worker that completes a node starts one child that completion made ready on the same queue
    /// itself, in the same atomic step, instead of sending it through the queue (one commit per hop instead of three on
    /// PostgreSQL). The child skips ahead of jobs already waiting in the queue, as a continuation of work in progress.
    /// The same option turns on eager start where the store can (Redis on one server): a workflow started in a process
    /// whose worker serves a root's queue, with a slot free and nothing waiting in that queue, has that root started for
    /// the worker in the create and run at once, without a claim. Default true.
    /// </summary>
    public bool EagerDispatch { get; set; } = true;

    /// <summary>Idle workers re-check the queue at least this often even without a wake-up. Default 1 s.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The identity this process reports in history. Default machine:pid:random.</summary>
    public string WorkerId { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>Serializer options for inputs, outputs and typed handlers. Type names are never read from payloads.</summary>
    public JsonSerializerOptions JsonOptions { get; set; } = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Classifies exceptions the built-in rules do not know. Return null to fall back to the defaults
    /// (<see cref="TimeoutException"/>, <see cref="System.Net.Http.HttpRequestException"/> and
    /// <see cref="IOException"/> are transient; everything else is permanent).
    /// </summary>
    public Func<Exception, ErrorClass?>? ErrorClassifier { get; set; }
}

/// <summary>The queues one worker serves.</summary>
public sealed class WorkerOptions
{
    internal Dictionary<string, int> Queues { get; } = new(StringComparer.Ordinal);

    /// <summary>Serves <paramref name="queue"/> running at most <paramref name="concurrency"/> nodes of it at once.</summary>
    public WorkerOptions Queue(string queue, int concurrency = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(queue);
        Queues[queue] = concurrency <= 0 ? Environment.ProcessorCount * 4 : concurrency;
        return this;
    }

    /// <summary>Jobs leased per round trip at most. Default 64.</summary>
    public int MaxBatch { get; set; } = 64;
}

internal sealed class NovaWorkflowOptionsValidator : IValidateOptions<NovaWorkflowOptions>
{
    public ValidateOptionsResult Validate(string? name, NovaWorkflowOptions options)
    {
        var errors = new List<string>();
        if (options.HeartbeatInterval <= TimeSpan.Zero)
        {
            errors.Add("HeartbeatInterval must be positive.");
        }

        if (options.LeaseDuration < options.HeartbeatInterval * 3)
        {
            errors.Add($"LeaseDuration ({options.LeaseDuration}) must be at least 3 × HeartbeatInterval ({options.HeartbeatInterval}) so one missed heartbeat does not lose the lease.");
        }

        if (options.MaxWorkerLosses < 1)
        {
            errors.Add("MaxWorkerLosses must be at least 1.");
        }

        if (options.MaxPayloadBytes < 16)
        {
            errors.Add("MaxPayloadBytes must be at least 16.");
        }

        foreach (var (value, label) in new[] { (options.SweepInterval, "SweepInterval"), (options.StrandedAfter, "StrandedAfter"), (options.Retention, "Retention"), (options.RetentionInterval, "RetentionInterval"), (options.PollInterval, "PollInterval") })
        {
            if (value <= TimeSpan.Zero)
            {
                errors.Add($"{label} must be positive.");
            }
        }

        if (string.IsNullOrWhiteSpace(options.WorkerId))
        {
            errors.Add("WorkerId must not be empty.");
        }

        if (options.JsonOptions is null)
        {
            errors.Add("JsonOptions must be set.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
