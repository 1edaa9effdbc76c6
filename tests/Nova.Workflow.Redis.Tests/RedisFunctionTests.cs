using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>The provider's code runs as one Redis function library, loaded on first use and again whenever a server lacks it.</summary>
public sealed class RedisFunctionTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task A_server_that_lost_the_library_is_given_it_again_and_work_goes_on()
    {
        var prefix = "fn" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(server.Connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("fn").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        var redis = server.Connection.GetServer(server.Connection.GetEndPoints()[0]);
        var library = RedisScripts.Library.Prefix.TrimEnd('_');

        Assert.Equal(ExecutionStatus.Succeeded, (await client.RunAsync("fn", timeout: TimeSpan.FromSeconds(20))).Status);
        Assert.NotEmpty((RedisResult[])(await redis.ExecuteAsync("FUNCTION", "LIST", "LIBRARYNAME", library))!);

        // As after a restart without persistence: every call now finds no function, loads the library once and goes on.
        await redis.ExecuteAsync("FUNCTION", "FLUSH");
        Assert.Empty((RedisResult[])(await redis.ExecuteAsync("FUNCTION", "LIST", "LIBRARYNAME", library))!);
        var runs = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => client.RunAsync("fn", timeout: TimeSpan.FromSeconds(20))));
        Assert.All(runs, r => Assert.Equal(ExecutionStatus.Succeeded, r.Status));
        Assert.NotEmpty((RedisResult[])(await redis.ExecuteAsync("FUNCTION", "LIST", "LIBRARYNAME", library))!);
    }

    [Fact]
    public async Task A_user_that_may_not_load_functions_calls_the_library_another_connection_loaded_and_runs_scripts_without_it()
    {
        // As a managed server that keeps FUNCTION LOAD to itself (or Redis before 7.0, where nothing is loaded): the same work.
        var admin = server.Connection.GetServer(server.Connection.GetEndPoints()[0]);
        var user = "nofn" + Guid.NewGuid().ToString("N")[..6];
        await admin.ExecuteAsync("ACL", "SETUSER", user, "on", ">secret", "~*", "&*", "+@all", "-function");
        // The library another connection loaded (this code: its name carries the code's hash) is called as it is.
        await admin.ExecuteAsync("FUNCTION", "FLUSH");
        await admin.ExecuteAsync("FUNCTION", "LOAD", RedisScripts.Library.Source);
        using var connection = await RedisServer.ConnectAsync($"{server.ConnectionString},user={user},password=secret");
        var prefix = "fn" + Guid.NewGuid().ToString("N")[..6];
        using var host = await RedisTestHost.StartAsync(connection, prefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("acl").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build()));
        var client = host.Services.GetRequiredService<IWorkflowClient>();
        await Assert.ThrowsAsync<RedisServerException>(() => connection.GetDatabase().ExecuteAsync("FUNCTION", "LIST"));
        var (scripts, functions) = (await CallsAsync(admin, "evalsha"), await CallsAsync(admin, "fcall"));
        var runs = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => client.RunAsync("acl", timeout: TimeSpan.FromSeconds(20))));
        Assert.All(runs, r => Assert.Equal(ExecutionStatus.Succeeded, r.Status));
        Assert.True(await CallsAsync(admin, "fcall") > functions + 10, "the runs called the library");
        // As functions, the only scripts are the waiters' marks (RedisSignals), at most one per run; as scripts, every step.
        Assert.InRange(await CallsAsync(admin, "evalsha") - scripts, 0, runs.Length);

        // Without it, this user cannot load it: the runs go on as scripts.
        await admin.ExecuteAsync("FUNCTION", "FLUSH");
        (scripts, functions) = (await CallsAsync(admin, "evalsha"), await CallsAsync(admin, "fcall"));
        runs = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => client.RunAsync("acl", timeout: TimeSpan.FromSeconds(20))));
        Assert.All(runs, r => Assert.Equal(ExecutionStatus.Succeeded, r.Status));
        Assert.Equal(["a", "b"], (await client.GetHistoryAsync(runs[0].Id)).Select(r => r.NodeId));
        Assert.True(await CallsAsync(admin, "evalsha") > scripts + 10, "the runs went through scripts");
        Assert.Empty((RedisResult[])(await admin.ExecuteAsync("FUNCTION", "LIST"))!);
        await host.StopAsync();
        await admin.ExecuteAsync("ACL", "DELUSER", user);
    }

    [Fact]
    public async Task A_process_that_starts_keeps_the_library_another_loaded_as_it_is()
    {
        // Loading it again (REPLACE) would drop what the library keeps between calls for every process using it.
        var admin = server.Connection.GetServer(server.Connection.GetEndPoints()[0]);
        var library = RedisScripts.Library.Prefix.TrimEnd('_');
        var prefix = "fn" + Guid.NewGuid().ToString("N")[..6];
        Task<Microsoft.Extensions.Hosting.IHost> Start(IConnectionMultiplexer connection, string keyPrefix) => RedisTestHost.StartAsync(connection, keyPrefix, nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
            .AddWorkflow(new WorkflowBuilder("keep").Node("a", "h").Build()));
        using var first = await Start(server.Connection, prefix);
        Assert.Equal(ExecutionStatus.Succeeded, (await first.Services.GetRequiredService<IWorkflowClient>().RunAsync("keep", timeout: TimeSpan.FromSeconds(20))).Status);
        Assert.NotEmpty((RedisResult[])(await admin.ExecuteAsync("FUNCTION", "LIST", "LIBRARYNAME", library))!);

        // A second connection, as a process starting up (its worker calls at once): its calls find the library and load nothing.
        var loads = await CallsAsync(admin, "function|load");
        using var connection = await RedisServer.ConnectAsync(server.ConnectionString);
        using var second = await Start(connection, prefix + "b");
        Assert.Equal(ExecutionStatus.Succeeded, (await second.Services.GetRequiredService<IWorkflowClient>().RunAsync("keep", timeout: TimeSpan.FromSeconds(20))).Status);
        Assert.Equal(loads, await CallsAsync(admin, "function|load"));
    }

    private static async Task<long> CallsAsync(IServer admin, string command)
    {
        var stats = await admin.InfoAsync("commandstats");
        var line = stats.SelectMany(g => g).FirstOrDefault(kv => kv.Key == "cmdstat_" + command).Value ?? "calls=0,";
        return long.Parse(line["calls=".Length..line.IndexOf(',', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Each_connection_loads_the_library_on_its_own_servers()
    {
        // One process, two servers: what one connection loaded says nothing about the other's server, and a load running
        // for one connection must not stand in for the other's.
        var other = new RedisServer();
        await other.InitializeAsync();
        var hosts = new List<Microsoft.Extensions.Hosting.IHost>();
        try
        {
            foreach (var connection in new[] { server.Connection, other.Connection })
            {
                hosts.Add(await RedisTestHost.StartAsync(connection, "fn" + Guid.NewGuid().ToString("N")[..6], nova => nova
                    .AddHandler("h", (_, _) => ValueTask.FromResult<JsonElement?>(null))
                    .AddWorkflow(new WorkflowBuilder("two").Node("a", "h").Build())));
            }

            for (var round = 0; round < 3; round++)
            {
                // Both servers lose the library at once; both connections then load it, concurrently.
                await Task.WhenAll(new[] { server, other }.Select(s => s.Connection.GetServer(s.Connection.GetEndPoints()[0]).ExecuteAsync("FUNCTION", "FLUSH")));
                var runs = await Task.WhenAll(hosts.SelectMany(h => Enumerable.Range(0, 4).Select(_ =>
                    h.Services.GetRequiredService<IWorkflowClient>().RunAsync("two", timeout: TimeSpan.FromSeconds(20)))));
                Assert.All(runs, r => Assert.Equal(ExecutionStatus.Succeeded, r.Status));
            }
        }
        finally
        {
            // Stopped whether the test passed or not: a live host would keep calling a server about to be removed.
            foreach (var host in hosts)
            {
                host.Dispose();
            }

            await other.DisposeAsync();
        }
    }
}
