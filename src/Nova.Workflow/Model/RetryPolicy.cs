namespace Nova.Workflow;

/// <summary>
/// How a node retries transient failures: exponential backoff with jitter and a cap.
/// Delays up to <see cref="InProcessThreshold"/> are retried in the worker (through a Polly
/// pipeline); longer ones go back to the queue with a not-before time, so no worker sleeps.
/// </summary>
public sealed record RetryPolicy
{
    /// <summary>The default policy: 3 attempts, 1 s initial delay, ×2, capped at 5 minutes, 20 % jitter.</summary>
    public static RetryPolicy Default { get; } = new();

    /// <summary>A policy that never retries.</summary>
    public static RetryPolicy None { get; } = new() { MaxAttempts = 1 };

    /// <summary>Total attempts including the first (1 = no retry). Default 3.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>Delay before the second attempt. Default 1 second.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Factor applied to the delay after each attempt. Default 2.</summary>
    public double BackoffMultiplier { get; init; } = 2.0;

    /// <summary>Upper bound of any delay. Default 5 minutes.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Random spread applied to each delay, as a fraction in [0, 1]. Default 0.2 (±20 %).</summary>
    public double JitterFactor { get; init; } = 0.2;

    /// <summary>Delays up to this are retried in process; longer ones are durable (queue not-before). Default 250 ms.</summary>
    public TimeSpan InProcessThreshold { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The delay before attempt <paramref name="nextAttempt"/> (2 for the first retry), without jitter.
    /// </summary>
    public TimeSpan BaseDelay(int nextAttempt)
    {
        if (nextAttempt <= 1)
        {
            return TimeSpan.Zero;
        }

        var ticks = InitialDelay.Ticks * Math.Pow(BackoffMultiplier, nextAttempt - 2);
        return ticks >= MaxDelay.Ticks || double.IsNaN(ticks) ? MaxDelay : TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>The delay before <paramref name="nextAttempt"/> with jitter applied; <paramref name="unitRandom"/> is in [0, 1).</summary>
    public TimeSpan Delay(int nextAttempt, double unitRandom)
    {
        var baseDelay = BaseDelay(nextAttempt);
        var spread = (unitRandom * 2 - 1) * JitterFactor;
        var ticks = (long)(baseDelay.Ticks * (1 + spread));
        return TimeSpan.FromTicks(Math.Clamp(ticks, 0, MaxDelay.Ticks));
    }

    /// <summary>
    /// Whether any retry can wait few enough to run in process: the shortest delay there can be (the first retry's, less
    /// the jitter; later ones only grow) is within <see cref="InProcessThreshold"/>. Not with the defaults (0.8 s at least
    /// against 250 ms).
    /// </summary>
    internal bool RetriesInProcess =>
        MaxAttempts > 1 && InProcessThreshold > TimeSpan.Zero
        && Math.Min(MaxDelay.Ticks, (long)(BaseDelay(2).Ticks * (1 - JitterFactor)) - 1) <= InProcessThreshold.Ticks;

    internal IEnumerable<string> Validate(string owner)
    {
        if (MaxAttempts < 1)
        {
            yield return $"{owner}: retry MaxAttempts must be at least 1 (was {MaxAttempts}).";
        }

        if (InitialDelay < TimeSpan.Zero || MaxDelay < TimeSpan.Zero || InProcessThreshold < TimeSpan.Zero)
        {
            yield return $"{owner}: retry delays must not be negative.";
        }

        if (BackoffMultiplier < 1)
        {
            yield return $"{owner}: retry BackoffMultiplier must be at least 1 (was {BackoffMultiplier}).";
        }

        if (JitterFactor is < 0 or > 1)
        {
            yield return $"{owner}: retry JitterFactor must be within [0, 1] (was {JitterFactor}).";
        }
    }
}

/// <summary>A rate limit: at most <see cref="Limit"/> starts per <see cref="Period"/>, across every worker sharing the store.</summary>
/// <param name="Limit">Starts allowed per period (a burst of this size is allowed).</param>
/// <param name="Period">The period.</param>
public sealed record RateLimit(int Limit, TimeSpan Period)
{
    /// <summary>A limit of <paramref name="limit"/> per minute.</summary>
    public static RateLimit PerMinute(int limit) => new(limit, TimeSpan.FromMinutes(1));

    /// <summary>A limit of <paramref name="limit"/> per second.</summary>
    public static RateLimit PerSecond(int limit) => new(limit, TimeSpan.FromSeconds(1));
}
