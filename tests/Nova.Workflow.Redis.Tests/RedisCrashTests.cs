using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>Three worker processes on one Redis; one is killed with SIGKILL mid-run and started again.</summary>
[Collection(ProcessTests.Name)]
public sealed class RedisCrashTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task Kill9_of_a_worker_mid_run_loses_nothing_and_commits_each_node_exactly_once()
    {
        var prefix = "crash" + Guid.NewGuid().ToString("N")[..6];
        await CrashScenario.RunAsync(
            _ => new() { ["Nova__Storage"] = "Redis", ["Nova__Prefix"] = prefix, ["ConnectionStrings__Redis"] = $"127.0.0.1:{server.Port}" },
            nova =>
            {
                nova.Services.AddSingleton(server.Connection);
                nova.UseRedis(o => o.Prefix = prefix);
            },
            (workers, start) =>
            {
                workers[1].Kill9();
                start("w2-restarted");
                return Task.CompletedTask;
            },
            worker => worker == "w2",
            CrashScenario.Concurrency);
    }
}
