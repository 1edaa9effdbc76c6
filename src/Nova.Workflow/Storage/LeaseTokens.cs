namespace Nova.Workflow.Storage;

/// <summary>
/// Lease tokens: a random per-process prefix and a counter. A token only has to differ from every other delivery's (a
/// stale holder must not pass for the current one); it guards no secret, so it needs no fresh randomness per lease,
/// which <see cref="Guid.NewGuid"/> cost at 4% of an in-memory run's samples.
/// </summary>
internal static class LeaseTokens
{
    private static readonly long Prefix = Random.Shared.NextInt64();
    private static long _counter;

    public static Guid Next()
    {
        Span<byte> bytes = stackalloc byte[16];
        BitConverter.TryWriteBytes(bytes, Prefix);
        BitConverter.TryWriteBytes(bytes[8..], Interlocked.Increment(ref _counter));
        return new Guid(bytes);
    }
}
