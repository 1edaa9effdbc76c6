using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Nova.Workflow.Conformance;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// A busy queue leaves dead row versions in the jobs table faster than autovacuum comes round, and every claim walks over
/// their index entries: the provider vacuums the table itself after a set number of finished jobs.
/// </summary>
public sealed class PostgresVacuumTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Theory]
    [InlineData(50)]
    [InlineData(0)]
    public async Task The_jobs_table_is_vacuumed_after_the_set_number_of_finished_jobs_or_never_when_off(int after)
    {
        var schema = "vacuum" + Guid.NewGuid().ToString("N")[..8];
        using var host = await PostgresTestHost.StartAsync(server.DataSource, o => { o.Schema = schema; o.VacuumJobsAfter = after; }, nova => nova
            .AddHandler("noop", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("one").Node("a", "noop").Build())
            .AddWorker());
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var queue = host.Services.GetRequiredService<PostgresJobQueue>();

        var ids = new List<Guid>();
        for (var k = 0; k < 120; k++)
        {
            ids.Add(await client.StartAsync("one"));
        }

        foreach (var id in ids)
        {
            Assert.Equal(ExecutionStatus.Succeeded, (await client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(30))).Status);
        }

        if (after > 0)
        {
            // 120 finished jobs: at least one vacuum ran, and the server counts it for this schema's table.
            await Eventually.TrueAsync(async () => queue.Vacuums >= 1 && await VacuumCountAsync(schema) >= 1, "a vacuum of the jobs table");
        }
        else
        {
            Assert.Equal(0, queue.Vacuums);
        }

        await host.StopAsync();
    }

    [Fact]
    public void A_negative_threshold_is_refused_at_start()
    {
        using var host = PostgresTestHost.Build(server.DataSource, o => o.VacuumJobsAfter = -1);
        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<PostgresProviderOptions>>().Value);
        Assert.Contains("VacuumJobsAfter", error.Message);
    }

    private async Task<long> VacuumCountAsync(string schema)
    {
        await using var command = server.DataSource.CreateCommand("SELECT coalesce(vacuum_count, 0) FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'");
        command.Parameters.AddWithValue(schema);
        return (long)(await command.ExecuteScalarAsync() ?? 0L);
    }
}
