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
}
