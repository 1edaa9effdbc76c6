using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using Npgsql;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>The provider conformance suite on a real PostgreSQL; each test gets its own schema.</summary>
public sealed class PostgresConformanceTests(PostgresServer server) : ConformanceTests, IClassFixture<PostgresServer>
{
    protected override ValueTask<IStorageHandle> CreateStorageAsync() => new(new PostgresStorageHandle(server.DataSource));
}

internal sealed class PostgresStorageHandle(NpgsqlDataSource dataSource) : IStorageHandle
{
    private readonly string _schema = "t" + Guid.NewGuid().ToString("N")[..12];

    public ProviderCapabilities Capabilities => ProviderCapabilities.RawJobStorage | ProviderCapabilities.EagerDispatch;

    public void Configure(NovaWorkflowBuilder builder)
    {
        builder.Services.TryAddSingleton(dataSource);
        builder.UsePostgres(o => o.Schema = _schema);
    }

    public async ValueTask InjectPoisonJobAsync(IJobQueue queue, string queueName, CancellationToken cancellationToken) =>
        await ((PostgresJobQueue)queue).InjectRawAsync(queueName, "{\"not\": \"a job\"}");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
