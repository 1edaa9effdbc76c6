using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nova.Workflow.Conformance;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// An execution of more than 128 nodes keeps its nodes in chunk rows of 64 beside a small document, and a transition writes
/// only the chunks it changed. Retention removes an execution's chunks and history rows with it.
/// </summary>
public sealed class PostgresChunkTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Large_dags_keep_their_nodes_in_chunks_and_run_every_node_once_across_two_hosts()
    {
        var schema = "chunks" + Guid.NewGuid().ToString("N")[..8];
        var runs = new ConcurrentDictionary<string, int>();

        // Two hosts take turns on each execution, so each reads the chunks the other wrote.
        using var host = await StartLayersHostAsync(schema, runs);
        using var other = await StartLayersHostAsync(schema, runs);
        var client = host.Services.GetRequiredService<IWorkflowClient>();

        // One created in a group commit, one on its own (an idempotency key).
        var ids = new[] { await client.StartAsync("layers"), await client.StartAsync("layers", options: new StartOptions { IdempotencyKey = "once" }) };
        foreach (var id in ids)
        {
            var result = await client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(60));
            Assert.Equal(ExecutionStatus.Succeeded, result.Status);
            var snapshot = await client.GetAsync(id);
            Assert.Equal(300, snapshot.Nodes.Count);
            Assert.All(snapshot.Nodes, n => Assert.Equal(NodeStatus.Succeeded, n.Status));
            Assert.Equal(300, snapshot.Progress.Done);
        }

        Assert.Equal(600, runs.Count);
        Assert.All(runs, r => Assert.Equal(1, r.Value));
        foreach (var id in ids)
        {
            Assert.Equal(5, (await ChunkRevisionsAsync(schema, id)).Count);
            await using var document = server.DataSource.CreateCommand($"SELECT length(state) FROM {schema}.executions WHERE id = $1");
            document.Parameters.AddWithValue(id);
            Assert.InRange((int)(await document.ExecuteScalarAsync())!, 1, 2_000);
        }

        await Task.WhenAll(host.StopAsync(), other.StopAsync());
    }

    private Task<Microsoft.Extensions.Hosting.IHost> StartLayersHostAsync(string schema, ConcurrentDictionary<string, int> runs) =>
        PostgresTestHost.StartAsync(server.DataSource, o => o.Schema = schema, nova =>
        {
            nova.AddHandler("count", (ctx, _) =>
            {
                runs.AddOrUpdate($"{ctx.ExecutionId}/{ctx.NodeId}", 1, (_, n) => n + 1);
                return ValueTask.FromResult<JsonElement?>(null);
            });

            // 300 nodes in 10 layers of 30; each node after the first layer joins two of the layer before.
            var dag = new WorkflowBuilder("layers");
            for (var i = 0; i < 300; i++)
            {
                var layer = i / 30;
                dag.Node($"n{i}", "count", n =>
                {
                    if (layer > 0)
                    {
                        n.DependsOn($"n{(layer - 1) * 30 + i % 30}", $"n{(layer - 1) * 30 + (i + 7) % 30}");
                    }
                });
            }

            nova.AddWorkflow(dag.Build());
            nova.AddWorker(w => w.Queue("default", 8));
        });

    [Fact]
    public async Task A_transition_writes_only_the_chunks_it_changed()
    {
        var schema = "chunks" + Guid.NewGuid().ToString("N")[..8];
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var host = await StartWideHostAsync(schema, async (ctx, ct) =>
        {
            if (ctx.NodeId == "w150")
            {
                await release.Task.WaitAsync(ct);
            }

            return null;
        });
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var id = await client.StartAsync("wide");
        await Eventually.TrueAsync(async () => (await client.GetAsync(id)).Progress.Done == 199, "every node but w150 done");

        // w150 is in chunk 2 (nodes 128-191): its completion changes that chunk and the document, nothing else.
        var before = await ChunkRevisionsAsync(schema, id);
        release.SetResult();
        Assert.Equal(ExecutionStatus.Succeeded, (await client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(30))).Status);
        var after = await ChunkRevisionsAsync(schema, id);

        Assert.Equal([0, 1, 2, 3], before.Keys.Order());
        Assert.Equal(before[0], after[0]);
        Assert.Equal(before[1], after[1]);
        Assert.NotEqual(before[2], after[2]);
        Assert.Equal(before[3], after[3]);
        Assert.All((await client.GetAsync(id)).Nodes, n => Assert.Equal(NodeStatus.Succeeded, n.Status));
        await host.StopAsync();
    }

    [Fact]
    public async Task A_large_execution_stored_before_chunks_runs_on_and_moves_into_chunks()
    {
        var schema = "chunks" + Guid.NewGuid().ToString("N")[..8];
        var runs = new ConcurrentDictionary<string, int>();
        Guid id;
        using (var starter = await StartWideHostAsync(schema, Counting(runs), workers: false))
        {
            id = await starter.Services.GetRequiredService<IWorkflowClient>().StartAsync("wide");
            await starter.StopAsync();
        }

        // Back to the single document of schema version 4: the chunks' nodes and edges spliced into its arrays, no chunk rows.
        await using (var downgrade = server.DataSource.CreateCommand(
            $"WITH doc AS (SELECT convert_from(state, 'UTF8')::jsonb AS d FROM {schema}.executions WHERE id = $1), " +
            $"c AS (SELECT chunk, convert_from(state, 'UTF8')::jsonb AS j FROM {schema}.execution_chunks WHERE execution_id = $1), " +
            "nodes AS (SELECT coalesce(jsonb_agg(n.v ORDER BY c.chunk, n.k), '[]') AS a FROM c, jsonb_array_elements(c.j -> 0) WITH ORDINALITY AS n(v, k)), " +
            "edges AS (SELECT coalesce(jsonb_agg(e.v ORDER BY c.chunk, e.k), '[]') AS a FROM c, jsonb_array_elements(c.j -> 1) WITH ORDINALITY AS e(v, k)) " +
            $"UPDATE {schema}.executions SET state = convert_to((jsonb_set(jsonb_set(doc.d, '{{Nodes}}', nodes.a), '{{InEdges}}', edges.a) - 'Chunks')::text, 'UTF8'), " +
            "revision = revision + 1 FROM doc, nodes, edges WHERE id = $1"))
        {
            downgrade.Parameters.AddWithValue(id);
            Assert.Equal(1, await downgrade.ExecuteNonQueryAsync());
        }

        await using (var drop = server.DataSource.CreateCommand($"DELETE FROM {schema}.execution_chunks WHERE execution_id = $1"))
        {
            drop.Parameters.AddWithValue(id);
            Assert.Equal(4, await drop.ExecuteNonQueryAsync());
        }

        using var host = await StartWideHostAsync(schema, Counting(runs));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        Assert.Equal(ExecutionStatus.Succeeded, (await client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(30))).Status);
        Assert.Equal(200, runs.Count);
        Assert.All((await client.GetAsync(id)).Nodes, n => Assert.Equal(NodeStatus.Succeeded, n.Status));
        Assert.Equal(4, (await ChunkRevisionsAsync(schema, id)).Count);
        await host.StopAsync();
    }

    /// <summary>A host with a workflow of 200 independent nodes run by <paramref name="handler"/>, and a worker unless told otherwise.</summary>
    private Task<Microsoft.Extensions.Hosting.IHost> StartWideHostAsync(string schema, Func<NodeContext, CancellationToken, ValueTask<JsonElement?>> handler, bool workers = true, Action<NovaWorkflowOptions>? options = null) =>
        PostgresTestHost.StartAsync(server.DataSource, o => o.Schema = schema, nova =>
        {
            if (options is not null)
            {
                nova.Configure(options);
            }

            nova.AddHandler("h", handler);
            var wide = new WorkflowBuilder("wide");
            for (var i = 0; i < 200; i++)
            {
                wide.Node($"w{i}", "h");
            }

            nova.AddWorkflow(wide.Build());
            if (workers)
            {
                nova.AddWorker(w => w.Queue("default", 16));
            }
        });

    /// <summary>A handler that counts its runs per node.</summary>
    private static Func<NodeContext, CancellationToken, ValueTask<JsonElement?>> Counting(ConcurrentDictionary<string, int> runs) => (ctx, _) =>
    {
        runs.AddOrUpdate(ctx.NodeId, 1, (_, n) => n + 1);
        return ValueTask.FromResult<JsonElement?>(null);
    };

    [Fact]
    public async Task Retention_removes_a_finished_execution_with_its_chunks_and_history()
    {
        var schema = "chunks" + Guid.NewGuid().ToString("N")[..8];
        using var host = await StartWideHostAsync(schema, (_, _) => ValueTask.FromResult<JsonElement?>(null), options: o =>
        {
            o.Retention = TimeSpan.FromMilliseconds(300);
            o.RetentionInterval = TimeSpan.FromMilliseconds(100);
        });
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var id = await client.StartAsync("wide");
        Assert.Equal(ExecutionStatus.Succeeded, (await client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(30))).Status);
        Assert.Equal(200, await CountAsync($"SELECT count(*) FROM {schema}.node_runs WHERE execution_id = $1", id));

        await Eventually.TrueAsync(async () => await CountAsync($"SELECT count(*) FROM {schema}.executions WHERE id = $1", id) == 0, "the execution to expire");
        Assert.Equal(0, await CountAsync($"SELECT count(*) FROM {schema}.node_runs WHERE execution_id = $1", id));
        Assert.Equal(0, await CountAsync($"SELECT count(*) FROM {schema}.execution_chunks WHERE execution_id = $1", id));
        await host.StopAsync();
    }

    private async Task<long> CountAsync(string sql, Guid id)
    {
        await using var command = server.DataSource.CreateCommand(sql);
        command.Parameters.AddWithValue(id);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Each chunk row's transaction id: it changes when the row is written.</summary>
    private async Task<Dictionary<int, string>> ChunkRevisionsAsync(string schema, Guid id)
    {
        await using var command = server.DataSource.CreateCommand($"SELECT chunk, xmin::text FROM {schema}.execution_chunks WHERE execution_id = $1");
        command.Parameters.AddWithValue(id);
        await using var reader = await command.ExecuteReaderAsync();
        var revisions = new Dictionary<int, string>();
        while (await reader.ReadAsync())
        {
            revisions[reader.GetInt32(0)] = reader.GetString(1);
        }

        return revisions;
    }
}
