using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Nova.Workflow.Redis;

/// <summary>
/// Reports whether Redis answers, and warns (Degraded) when <c>maxmemory-policy</c> is not
/// <c>noeviction</c>: with any other policy Redis may silently evict workflow state under memory pressure.
/// Register it with <c>services.AddHealthChecks().AddCheck&lt;RedisHealthCheck&gt;("nova-redis")</c>.
/// </summary>
public sealed class RedisHealthCheck : IHealthCheck
{
    private readonly IConnectionMultiplexer _redis;
    private readonly int _database;

    /// <summary>Creates the check.</summary>
    public RedisHealthCheck(IConnectionMultiplexer redis, IOptions<RedisProviderOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        _database = options.Value.Database;
    }

    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var latency = await _redis.GetDatabase(_database).PingAsync().ConfigureAwait(false);
            var policy = await _redis.GetDatabase(_database).ExecuteAsync("CONFIG", "GET", "maxmemory-policy").ConfigureAwait(false);
            var values = (RedisResult[])policy!;
            var value = values.Length >= 2 ? (string?)values[1] : null;
            var data = new Dictionary<string, object> { ["latency_ms"] = latency.TotalMilliseconds, ["maxmemory-policy"] = value ?? "unknown" };
            return value is null or "noeviction"
                ? HealthCheckResult.Healthy("Redis answers.", data)
                : HealthCheckResult.Degraded($"maxmemory-policy is '{value}': Redis may evict workflow state. Set it to 'noeviction'.", data: data);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy("Redis does not answer.", ex);
        }
    }
}
