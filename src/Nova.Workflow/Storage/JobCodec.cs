using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nova.Workflow.Storage;

/// <summary>
/// The stored form of a job, shared by the providers that keep jobs as text: short field names,
/// System.Text.Json source generation, no type information read from the payload.
/// </summary>
internal static class JobCodec
{
    /// <summary>The id a job is stored under: execution:node:attempt, so the same delivery is stored once.</summary>
    public static string Id(Job job) => $"{job.ExecutionId:N}:{job.NodeId}:{job.Attempt}";

    public static string Serialize(Job job) =>
        JsonSerializer.Serialize(new StoredJob(job.ExecutionId, job.NodeId, job.Attempt, job.Queue, job.Priority, job.TraceParent), JobCodecContext.Default.StoredJob);

    /// <summary>The job, or null when the text is not a readable job (it belongs in the dead letters).</summary>
    public static Job? TryParse(string? payload)
    {
        if (string.IsNullOrEmpty(payload))
        {
            return null;
        }

        try
        {
            var p = JsonSerializer.Deserialize(payload, JobCodecContext.Default.StoredJob);
            return p is null || string.IsNullOrEmpty(p.N) || string.IsNullOrEmpty(p.Q) ? null : new Job(p.E, p.N, p.A, p.Q, p.P, null, p.Tp);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public static string Serialize(DeadLetter entry) => JsonSerializer.Serialize(entry, JobCodecContext.Default.DeadLetter);

    public static DeadLetter? ParseDeadLetter(string json) => JsonSerializer.Deserialize(json, JobCodecContext.Default.DeadLetter);

    /// <summary>The dead letter of a stored job nobody can read; the text is kept (truncated) for diagnosis.</summary>
    public static DeadLetter Unreadable(string queue, string? payload, DateTimeOffset at) =>
        new(Guid.CreateVersion7(), Guid.Empty, null, 0, queue, DeadLetterReason.Undeserializable, "The stored job could not be read.", at, payload is { Length: > 512 } ? payload[..512] : payload);

    internal sealed record StoredJob(
        [property: JsonPropertyName("e")] Guid E,
        [property: JsonPropertyName("n")] string N,
        [property: JsonPropertyName("a")] int A,
        [property: JsonPropertyName("q")] string Q,
        [property: JsonPropertyName("p")] int P,
        [property: JsonPropertyName("tp")] string? Tp);
}

[JsonSerializable(typeof(JobCodec.StoredJob))]
[JsonSerializable(typeof(DeadLetter))]
internal sealed partial class JobCodecContext : JsonSerializerContext;

/// <summary>How idle workers wait: until a wake-up signal or the next due time (delayed job, lapsing lease), whichever is first.</summary>
internal static class WakeWait
{
    public static async ValueTask WaitAsync(IEnumerable<Task> signals, TimeSpan wait, TimeProvider time, CancellationToken cancellationToken)
    {
        if (wait <= TimeSpan.Zero)
        {
            return;
        }

        try
        {
            await Task.WhenAny(signals).WaitAsync(wait, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The safety net: the caller looks again.
        }
    }
}
