using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Nova.Workflow.Postgres;

/// <summary>
/// Reports whether PostgreSQL answers and the schema is at the version this library needs.
/// Register it with <c>services.AddHealthChecks().AddCheck&lt;PostgresHealthCheck&gt;("nova-postgres")</c>.
/// </summary>
public sealed class PostgresHealthCheck : IHealthCheck
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schema;

    /// <summary>Creates the check.</summary>
    public PostgresHealthCheck(NpgsqlDataSource dataSource, IOptions<PostgresProviderOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        _schema = options.Value.Schema;
    }

    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var command = _dataSource.CreateCommand($"SELECT coalesce(max(version), 0) FROM {_schema}.schema_version");
            var version = (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            var data = new Dictionary<string, object> { ["schema_version"] = version };
            return version >= PostgresMigrations.LatestVersion
                ? HealthCheckResult.Healthy("PostgreSQL answers.", data)
                : HealthCheckResult.Unhealthy($"Schema '{_schema}' is at version {version}; version {PostgresMigrations.LatestVersion} is needed. Run the migrations.", data: data);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy("PostgreSQL does not answer or the schema is missing.", ex);
        }
    }
}
