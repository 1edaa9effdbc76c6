using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>The provider conformance suite on a real Redis; each test gets its own key prefix.</summary>
public sealed class RedisConformanceTests(RedisServer server) : ConformanceTests, IClassFixture<RedisServer>
{
    protected override ValueTask<IStorageHandle> CreateStorageAsync() => new(new RedisStorageHandle(server.Connection));
}

internal sealed class RedisStorageHandle(IConnectionMultiplexer connection, bool cluster = false) : IStorageHandle
{
    private readonly string _prefix = "t" + Guid.NewGuid().ToString("N")[..12];

    // Eager dispatch needs the fused scripts (state and queue on one server); a cluster spreads them over slots.
    public ProviderCapabilities Capabilities => ProviderCapabilities.RawJobStorage | (cluster ? 0 : ProviderCapabilities.EagerDispatch | ProviderCapabilities.EagerStart);

    public void Configure(NovaWorkflowBuilder builder)
    {
        builder.Services.AddSingletonConnection(connection);
        builder.UseRedis(o => o.Prefix = _prefix);
    }

    private int _poisoned;

    // Each call damages the job another way: its payload, its whole record, or no record behind the ready id.
    public async ValueTask InjectPoisonJobAsync(IJobQueue queue, string queueName, CancellationToken cancellationToken) =>
        await ((RedisJobQueue)queue).InjectRawAsync(queueName, "poison-" + Guid.NewGuid().ToString("N"), "{ this is not a job", (RawJobDamage)(_poisoned++ % 3));

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

internal static class ServiceCollectionTestExtensions
{
    public static void AddSingletonConnection(this Microsoft.Extensions.DependencyInjection.IServiceCollection services, IConnectionMultiplexer connection) =>
        Microsoft.Extensions.DependencyInjection.Extensions.ServiceCollectionDescriptorExtensions.TryAddSingleton(services, connection);
}
