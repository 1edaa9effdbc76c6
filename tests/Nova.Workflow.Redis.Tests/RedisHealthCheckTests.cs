using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

[Collection(ProcessTests.Name)]
public sealed class RedisHealthCheckTests
{
    [Fact]
    public async Task Reports_healthy_on_noeviction_degraded_on_an_evicting_policy_and_unhealthy_when_down()
    {
        var server = new RedisServer();
        await server.InitializeAsync();
        var check = new RedisHealthCheck(server.Connection, Options.Create(new RedisProviderOptions()));
        try
        {
            Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
            await server.Connection.GetServer(server.Connection.GetEndPoints()[0]).ConfigSetAsync("maxmemory-policy", "allkeys-lru");
            var degraded = await check.CheckHealthAsync(new HealthCheckContext());
            Assert.Equal(HealthStatus.Degraded, degraded.Status);
            Assert.Contains("noeviction", degraded.Description);
        }
        finally
        {
            await server.DisposeAsync();
        }

        using var down = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{RedisServer.FreePort()},abortConnect=false,connectTimeout=200,syncTimeout=500,asyncTimeout=500");
        Assert.Equal(HealthStatus.Unhealthy, (await new RedisHealthCheck(down, Options.Create(new RedisProviderOptions())).CheckHealthAsync(new HealthCheckContext())).Status);
    }
}
