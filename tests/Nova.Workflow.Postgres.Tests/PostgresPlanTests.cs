using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>Each workflow version's node ids and handlers are stored when it first starts, also from a group commit.</summary>
public sealed class PostgresPlanTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Plans_first_started_together_are_stored_with_their_executions()
    {
        var schema = "plans" + Guid.NewGuid().ToString("N")[..8];
        using var host = await PostgresTestHost.StartAsync(server.DataSource, o => o.Schema = schema, nova =>
        {
            nova.AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null));
            for (var k = 0; k < 20; k++)
            {
                nova.AddWorkflow(new WorkflowBuilder($"w{k}").Node("x", "h").Node("y", "h", n => n.DependsOn("x")).Build());
            }
        });
        var client = host.Services.GetRequiredService<IWorkflowClient>();

        // Twenty new workflows started at once in a fresh host: group commits (the first also reads the database clock).
        var ids = await Task.WhenAll(Enumerable.Range(0, 20).Select(k => client.StartAsync($"w{k}")));
        Assert.All(await Task.WhenAll(ids.Select(id => client.GetAsync(id))), snapshot => Assert.Equal(["x", "y"], snapshot.Nodes.Select(n => n.Id)));

        await using var command = server.DataSource.CreateCommand($"SELECT workflow, nodes FROM {schema}.plans ORDER BY workflow");
        await using var reader = await command.ExecuteReaderAsync();
        var plans = new Dictionary<string, string>();
        while (await reader.ReadAsync())
        {
            plans[reader.GetString(0)] = Encoding.UTF8.GetString((byte[])reader.GetValue(1));
        }

        Assert.Equal(20, plans.Count);
        Assert.All(plans.Values, nodes => Assert.Equal("""[["x","h"],["y","h"]]""", nodes));
        await host.StopAsync();
    }
}
