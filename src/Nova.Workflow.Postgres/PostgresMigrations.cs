using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Nova.Workflow.Postgres;

/// <summary>The provider's versioned schema migrations.</summary>
public static class PostgresMigrations
{
    private static readonly (int Version, string Name)[] Steps = [(1, "001_initial"), (2, "002_state_bytes"), (3, "003_plans"), (4, "004_revision"), (5, "005_chunks"), (6, "006_hot_updates")];

    /// <summary>The latest schema version.</summary>
    public static int LatestVersion => Steps[^1].Version;

    /// <summary>The whole SQL for <paramref name="schema"/>, for DBAs who run migrations by hand.</summary>
    public static string Script(string schema = "nova")
    {
        Check(schema);
        return $"CREATE SCHEMA IF NOT EXISTS {schema};\nCREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());\n"
            + string.Concat(Steps.Select(s => Read(s.Name, schema) + $"\nINSERT INTO {schema}.schema_version (version) VALUES ({s.Version}) ON CONFLICT DO NOTHING;\n"));
    }

    /// <summary>Applies the missing versions, one process at a time (advisory lock).</summary>
    internal static async Task MigrateAsync(NpgsqlDataSource dataSource, string schema, CancellationToken cancellationToken)
    {
        Check(schema);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_lock(hashtextextended($1, 0))", connection))
        {
            lockCommand.Parameters.AddWithValue("nova.migrations." + schema);
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            await using (var init = new NpgsqlCommand($"CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());", connection))
            {
                await init.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            int current;
            await using (var versionCommand = new NpgsqlCommand($"SELECT coalesce(max(version), 0) FROM {schema}.schema_version", connection))
            {
                current = (int)(await versionCommand.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            }

            if (current > LatestVersion)
            {
                // A newer release changed what it stores (version 5 moved a large execution's nodes into chunk rows): an older
                // host would misread it and could write it back wrong.
                throw new InvalidOperationException(
                    $"The PostgreSQL schema '{schema}' is at version {current}, newer than this release of Nova.Workflow knows ({LatestVersion}). Run a release that knows it.");
            }

            foreach (var (version, name) in Steps.Where(s => s.Version > current))
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (var step = new NpgsqlCommand(Read(name, schema) + $"\nINSERT INTO {schema}.schema_version (version) VALUES ({version});", connection, transaction))
                {
                    await step.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock(hashtextextended($1, 0))", connection);
            unlock.Parameters.AddWithValue("nova.migrations." + schema);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static void Check(string schema)
    {
        if (!PostgresProviderOptions.Identifier().IsMatch(schema))
        {
            throw new ArgumentException($"Schema '{schema}' must be a lower-case identifier.", nameof(schema));
        }
    }

    private static string Read(string name, string schema)
    {
        using var stream = typeof(PostgresMigrations).Assembly.GetManifestResourceStream($"Nova.Workflow.Postgres.Sql.{name}.sql")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Replace("{schema}", schema, StringComparison.Ordinal);
    }
}

/// <summary>Runs the migrations when the host starts, before any worker fetches.</summary>
internal sealed class PostgresMigrationService(NpgsqlDataSource dataSource, IOptions<PostgresProviderOptions> options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        options.Value.RunMigrations ? PostgresMigrations.MigrateAsync(dataSource, options.Value.Schema, cancellationToken) : Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
