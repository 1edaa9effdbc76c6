using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nova.Workflow.Conformance;
using Nova.Workflow.Storage;
using Npgsql;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// A transition's writes and its COMMIT go to PostgreSQL in one round trip. When a write fails there, the commit must not
/// happen: nothing of the transition stays, the pooled connection comes back clean, and the same completion succeeds later.
/// </summary>
public sealed class PostgresCommitTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task A_write_that_fails_in_the_database_commits_nothing_and_the_completion_lands_when_retried()
    {
        var schema = "commit" + Guid.NewGuid().ToString("N")[..8];
        using var host = await PostgresTestHost.StartAsync(server.DataSource, o => o.Schema = schema, nova => nova
            .AddHandler("step", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("guarded").Node("a", "step").Node("b", "step", n => n.DependsOn("a")).Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var store = host.Services.GetRequiredService<IStateStore>();
        var queue = host.Services.GetRequiredService<IJobQueue>();

        var id = await client.StartAsync("guarded");
        LeasedJob? job = null;
        await Eventually.TrueAsync(async () => (job = (await queue.DequeueAsync([WorkflowDefinition.DefaultQueue], 1, TimeSpan.FromSeconds(30))).FirstOrDefault()) is not null, "the first job");
        Assert.Equal(StartOutcome.Started, (await store.TryStartNodeAsync(new StartNodeRequest(job!, "w1", TimeSpan.FromSeconds(30), 3))).Outcome);

        // The history insert, one of the transition's writes, fails inside PostgreSQL.
        await ExecuteAsync(
            $"CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; " +
            $"CREATE TRIGGER refuse BEFORE INSERT ON {schema}.node_runs FOR EACH ROW EXECUTE FUNCTION {schema}.refuse();");
        var completion = new CompleteNodeRequest { Run = job!, Outcome = AttemptOutcome.Succeeded, FinalAttempt = 1, StartedAt = DateTimeOffset.UtcNow, Output = JsonSerializer.SerializeToElement(7) };
        var refused = await Assert.ThrowsAsync<PostgresException>(async () => await store.CompleteNodeAsync(completion));
        Assert.Contains("refused by the test", refused.MessageText, StringComparison.Ordinal);

        // Nothing of it stayed: the node still runs under its lease, no history, no job for the child, the job not acked.
        for (var k = 0; k < 10; k++)
        {
            // Every pooled connection answers plainly: none came back inside the failed transaction.
            var snapshot = await client.GetAsync(id);
            Assert.Equal(NodeStatus.Running, snapshot.Nodes.Single(n => n.Id == "a").Status);
            Assert.Equal(NodeStatus.Pending, snapshot.Nodes.Single(n => n.Id == "b").Status);
        }

        Assert.Empty(await client.GetHistoryAsync(id));
        Assert.Equal(1L, await ScalarAsync<long>($"SELECT count(*) FROM {schema}.jobs"));

        await ExecuteAsync($"DROP TRIGGER refuse ON {schema}.node_runs;");
        var accepted = await store.CompleteNodeAsync(completion);
        Assert.True(accepted.Accepted);
        var after = await client.GetAsync(id);
        Assert.Equal(NodeStatus.Succeeded, after.Nodes.Single(n => n.Id == "a").Status);
        Assert.Equal(7, after.Nodes.Single(n => n.Id == "a").Output!.Value.GetInt32());
        Assert.Single(await client.GetHistoryAsync(id));
        await host.StopAsync();
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var command = server.DataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = server.DataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
