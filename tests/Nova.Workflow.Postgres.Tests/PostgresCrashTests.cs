using Microsoft.Extensions.DependencyInjection.Extensions;
using Nova.Workflow.Redis.Tests;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>Three worker processes on one PostgreSQL: SIGKILL of one, and termination of every worker connection.</summary>
[Collection(ProcessTests.Name)]
public sealed class PostgresCrashTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Kill9_of_a_worker_mid_run_loses_nothing_and_commits_each_node_exactly_once()
    {
        var schema = "crash" + Guid.NewGuid().ToString("N")[..6];
        await CrashScenario.RunAsync(
            _ => Environment(schema),
            nova => Client(nova, schema),
            (workers, start) =>
            {
                workers[1].Kill9();
                start("w2-restarted");
                return Task.CompletedTask;
            },
            worker => worker == "w2",
            CrashScenario.Concurrency);
    }

    [Fact]
    public async Task Terminating_every_worker_connection_mid_run_workers_reconnect_and_everything_completes()
    {
        var schema = "term" + Guid.NewGuid().ToString("N")[..6];
        await CrashScenario.RunAsync(
            _ => Environment(schema),
            nova => Client(nova, schema),
            async (_, _) =>
            {
                // Every backend of the worker processes (application_name marks them), mid-transaction or idle.
                await using var command = server.DataSource.CreateCommand(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'nova-worker' AND pid <> pg_backend_pid()");
                var terminated = (long)(await command.ExecuteScalarAsync())!;
                Assert.True(terminated > 0, "no worker connection was terminated");
            },
            _ => true,
            CrashScenario.Concurrency * 3);
    }

    private Dictionary<string, string> Environment(string schema) => new()
    {
        ["Nova__Storage"] = "Postgres",
        ["Nova__Prefix"] = schema,
        ["ConnectionStrings__Postgres"] = server.ConnectionString + ";Application Name=nova-worker",
    };

    private void Client(NovaWorkflowBuilder nova, string schema)
    {
        nova.Services.TryAddSingleton(server.DataSource);
        nova.UsePostgres(o => o.Schema = schema);
    }
}
