using Microsoft.Extensions.DependencyInjection.Extensions;
using Nova.Workflow.Conformance;
using Nova.Workflow.Redis;
using Nova.Workflow.Redis.Tests;
using Nova.Workflow.Storage;
using Npgsql;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// Mixed mode: Redis as the queue, PostgreSQL as the state store. The state commits first and the
/// enqueue follows; the sweeper covers a crash in between.
/// </summary>
public sealed class MixedConformanceTests(PostgresServer postgres, RedisServer redis) : ConformanceTests, IClassFixture<PostgresServer>, IClassFixture<RedisServer>
{
    protected override ValueTask<IStorageHandle> CreateStorageAsync() => new(new MixedStorageHandle(postgres.DataSource, redis.Connection));

    private sealed class MixedStorageHandle(NpgsqlDataSource dataSource, IConnectionMultiplexer connection) : IStorageHandle
    {
        private readonly string _name = "m" + Guid.NewGuid().ToString("N")[..12];

        public ProviderCapabilities Capabilities => ProviderCapabilities.RawJobStorage;

        public void Configure(NovaWorkflowBuilder builder)
        {
            builder.Services.TryAddSingleton(dataSource);
            builder.Services.TryAddSingleton(connection);
            builder.UseRedis(o => o.Prefix = _name).UsePostgresState(o => o.Schema = _name);
        }

        public async ValueTask InjectPoisonJobAsync(IJobQueue queue, string queueName, CancellationToken cancellationToken) =>
            await ((RedisJobQueue)queue).InjectRawAsync(queueName, "poison-" + Guid.NewGuid().ToString("N"), "{ not a job");

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
