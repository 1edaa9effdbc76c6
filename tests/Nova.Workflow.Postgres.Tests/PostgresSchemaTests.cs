using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

public sealed class PostgresSchemaTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Migrations_are_idempotent_concurrent_starts_are_safe_and_the_health_check_sees_the_version()
    {
        var schema = "mig" + Guid.NewGuid().ToString("N")[..8];
        var check = new PostgresHealthCheck(server.DataSource, Options.Create(new PostgresProviderOptions { Schema = schema }));
        Assert.Equal(HealthStatus.Unhealthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);

        // Three hosts migrating at once: the advisory lock lets one create, the others find it done.
        await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => PostgresMigrations.MigrateAsync(server.DataSource, schema, CancellationToken.None)));
        await PostgresMigrations.MigrateAsync(server.DataSource, schema, CancellationToken.None);
        await using (var versions = server.DataSource.CreateCommand($"SELECT count(*) FROM {schema}.schema_version"))
        {
            Assert.Equal(PostgresMigrations.LatestVersion, (long)(await versions.ExecuteScalarAsync())!);
        }

        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
    }

    [Fact]
    public async Task The_hand_run_script_creates_the_same_schema_and_RunMigrations_false_skips_them()
    {
        var schema = "dba" + Guid.NewGuid().ToString("N")[..8];
        await using (var script = server.DataSource.CreateCommand(PostgresMigrations.Script(schema)))
        {
            await script.ExecuteNonQueryAsync();
        }

        using var host = await PostgresTestHost.StartAsync(
            server.DataSource,
            o =>
            {
                o.Schema = schema;
                o.RunMigrations = false;
            },
            nova => nova
                .AddHandler("h", (_, _) => ValueTask.FromResult<System.Text.Json.JsonElement?>(null))
                .AddWorkflow(new WorkflowBuilder("dba").Node("a", "h").Build())
                .AddWorker());
        var result = await host.Services.GetRequiredService<IWorkflowClient>().RunAsync("dba", timeout: TimeSpan.FromSeconds(20));
        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        await host.StopAsync();
    }

    [Fact]
    public async Task A_schema_newer_than_the_release_stops_the_host_with_a_clear_error()
    {
        var schema = "new" + Guid.NewGuid().ToString("N")[..8];
        await PostgresMigrations.MigrateAsync(server.DataSource, schema, CancellationToken.None);
        await using (var newer = server.DataSource.CreateCommand($"INSERT INTO {schema}.schema_version (version) VALUES ({PostgresMigrations.LatestVersion + 1})"))
        {
            await newer.ExecuteNonQueryAsync();
        }

        using var host = PostgresTestHost.Build(server.DataSource, o => o.Schema = schema);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());
        Assert.Contains($"version {PostgresMigrations.LatestVersion + 1}, newer than this release", ex.Message);
    }

    [Theory]
    [InlineData("Nova")]
    [InlineData("nova; DROP TABLE x")]
    [InlineData("")]
    public async Task An_unsafe_schema_name_stops_the_host_with_a_clear_error(string schema)
    {
        using var host = PostgresTestHost.Build(server.DataSource, o => o.Schema = schema);
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("lower-case identifier", ex.Message);
    }
}
