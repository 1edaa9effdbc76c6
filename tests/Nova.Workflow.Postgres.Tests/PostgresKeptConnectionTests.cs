using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Nova.Workflow.Conformance;
using Npgsql;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// The store keeps a few open connections between its transactions (no pool reset before the next one) and prepares its
/// statements on them. A connection is kept only after work that ended cleanly, only while there is room, and not once it
/// sat unused too long.
/// </summary>
public sealed class PostgresKeptConnectionTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task A_connection_whose_work_succeeded_is_kept_as_it_was_and_used_again()
    {
        await using var kept = new KeptConnections(server.DataSource, TimeProvider.System, capacity: 2);
        var first = await kept.RunAsync(async c => { await ExecuteAsync(c, "SET application_name = 'kept-probe'"); return c.ProcessID; }, default);

        // The same session, not reset: a connection back from the pool would have had its settings reset.
        var (pid, name) = await kept.RunAsync(async c => (c.ProcessID, await ScalarAsync<string>(c, "SHOW application_name")), default);
        Assert.Equal(first, pid);
        Assert.Equal("kept-probe", name);
        Assert.Equal(1, kept.Count);
    }

    [Fact]
    public async Task A_connection_whose_work_threw_goes_back_to_the_pool_and_is_reset_and_so_does_every_kept_one()
    {
        await using var kept = new KeptConnections(server.DataSource, TimeProvider.System, capacity: 2);
        // Two kept: the work takes the one given back last, and the other stays kept while the work runs.
        var other = await kept.OpenAsync(default);
        var used = await kept.OpenAsync(default);
        await kept.ReturnAsync(other);
        await kept.ReturnAsync(used);
        Assert.Equal(2, kept.Count);
        await Assert.ThrowsAsync<PostgresException>(() => kept.RunAsync<int>(async c =>
        {
            await ExecuteAsync(c, "SET application_name = 'failed-probe'");
            await ExecuteAsync(c, "SELECT 1 / 0");
            return 0;
        }, default));
        Assert.Equal(0, kept.Count);
        Assert.Equal(System.Data.ConnectionState.Closed, used.State);
        Assert.Equal(System.Data.ConnectionState.Closed, other.State);

        var name = await kept.RunAsync(c => ScalarAsync<string>(c, "SHOW application_name"), default);
        Assert.NotEqual("failed-probe", name);
    }

    [Fact]
    public async Task At_most_capacity_connections_are_kept_and_disposing_closes_them()
    {
        var kept = new KeptConnections(server.DataSource, TimeProvider.System, capacity: 2);
        var open = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => kept.OpenAsync(default).AsTask()));
        foreach (var connection in open)
        {
            await kept.ReturnAsync(connection);
        }

        Assert.Equal(2, kept.Count);
        Assert.Equal(System.Data.ConnectionState.Closed, open[2].State);

        await kept.DisposeAsync();
        Assert.Equal(0, kept.Count);
        Assert.All(open, c => Assert.Equal(System.Data.ConnectionState.Closed, c.State));

        // Given back after the dispose, a connection is closed, not kept.
        var late = await server.DataSource.OpenConnectionAsync();
        await kept.ReturnAsync(late);
        Assert.Equal(0, kept.Count);
        Assert.Equal(System.Data.ConnectionState.Closed, late.State);
    }

    [Fact]
    public async Task A_connection_unused_for_longer_than_the_idle_limit_is_not_used_again()
    {
        var time = new FakeTimeProvider();
        await using var kept = new KeptConnections(server.DataSource, time, capacity: 2);
        await kept.RunAsync(async c => { await ExecuteAsync(c, "SET application_name = 'idle-probe'"); return 0; }, default);

        time.Advance(KeptConnections.IdleFor - TimeSpan.FromSeconds(1));
        Assert.Equal("idle-probe", await kept.RunAsync(c => ScalarAsync<string>(c, "SHOW application_name"), default));

        time.Advance(KeptConnections.IdleFor + TimeSpan.FromSeconds(1));
        Assert.NotEqual("idle-probe", await kept.RunAsync(c => ScalarAsync<string>(c, "SHOW application_name"), default));
    }

    [Fact]
    public async Task Kept_connections_unused_for_the_idle_limit_go_back_to_the_pool_though_nothing_asks_for_one()
    {
        var time = new FakeTimeProvider();
        await using var kept = new KeptConnections(server.DataSource, time, capacity: 2);
        var first = await kept.OpenAsync(default);
        var second = await kept.OpenAsync(default);
        await kept.ReturnAsync(first);
        time.Advance(KeptConnections.IdleFor / 2);
        await kept.ReturnAsync(second);
        Assert.Equal(2, kept.Count);

        // The timer at the idle limit finds the first unused that long, the second not yet; the next one finds it too.
        time.Advance(KeptConnections.IdleFor / 2);
        Assert.Equal(1, kept.Count);
        Assert.Equal(System.Data.ConnectionState.Closed, first.State);
        Assert.Equal(System.Data.ConnectionState.Open, second.State);
        time.Advance(KeptConnections.IdleFor);
        Assert.Equal(0, kept.Count);
        Assert.Equal(System.Data.ConnectionState.Closed, second.State);
    }

    [Fact]
    public async Task The_store_runs_its_transitions_on_kept_connections_with_prepared_statements()
    {
        var schema = "kept" + Guid.NewGuid().ToString("N")[..8];
        var chain = new WorkflowBuilder("kept-chain").Node("n0", "step");
        for (var i = 1; i < 20; i++)
        {
            var parent = $"n{i - 1}";
            chain.Node($"n{i}", "step", n => n.DependsOn(parent));
        }

        using var host = await PostgresTestHost.StartAsync(server.DataSource, o => o.Schema = schema, nova => nova
            .AddHandler("step", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(chain.Build())
            .AddWorker(w => w.Queue("default", 4)));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var snapshot = await client.WaitForCompletionAsync(await client.StartAsync("kept-chain"), TimeSpan.FromSeconds(30));
        Assert.Equal(ExecutionStatus.Succeeded, snapshot.Status);

        // Stopped, the workers no longer take kept connections while they are looked at.
        await host.StopAsync();
        var store = host.Services.GetRequiredService<PostgresStateStore>();
        Assert.InRange(store.Kept.Count, 1, 5);
        var connections = new List<NpgsqlConnection>();
        while (store.Kept.Count > 0)
        {
            connections.Add(await store.Kept.OpenAsync(default));
        }

        // On the connection that ran the transitions: at least the lock of the executions and their update.
        var most = 0L;
        foreach (var connection in connections)
        {
            most = Math.Max(most, await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%{schema}.executions%'"));
            await store.Kept.ReturnAsync(connection);
        }

        Assert.True(most >= 2, $"{most} prepared statements on the executions");
    }

    [Fact]
    public async Task On_a_multiplexing_data_source_the_store_neither_prepares_nor_keeps_nor_listens_and_workflows_run()
    {
        await using var multiplexing = NpgsqlDataSource.Create(server.ConnectionString + ";Multiplexing=true");
        Assert.True(KeptConnections.Multiplexes(multiplexing));
        Assert.False(KeptConnections.Multiplexes(server.DataSource));
        var schema = "mux" + Guid.NewGuid().ToString("N")[..8];
        using var host = await PostgresTestHost.StartAsync(multiplexing, o => o.Schema = schema, nova => nova
            .AddHandler("step", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("mux").Node("a", "step").Node("b", "step", n => n.DependsOn("a")).Node("c", "step", n => n.DependsOn("a")).Build())
            .AddWorker(w => w.Queue("default", 4)));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var snapshot = await client.WaitForCompletionAsync(await client.StartAsync("mux"), TimeSpan.FromSeconds(30));
        Assert.Equal(ExecutionStatus.Succeeded, snapshot.Status);
        Assert.Equal(0, host.Services.GetRequiredService<PostgresStateStore>().Kept.Count);
        await host.StopAsync();
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
