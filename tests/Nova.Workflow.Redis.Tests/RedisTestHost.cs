using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace Nova.Workflow.Redis.Tests;

/// <summary>A started host on <paramref name="connection"/> under its own key prefix, with a worker on the default queue.</summary>
internal static class RedisTestHost
{
    public static async Task<IHost> StartAsync(IConnectionMultiplexer connection, string prefix, Action<NovaWorkflowBuilder> configure, bool withWorker = true)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging();
        builder.Services.AddSingletonConnection(connection);
        builder.Services.AddNovaWorkflows(nova =>
        {
            nova.UseRedis(o => o.Prefix = prefix);
            configure(nova);
            if (withWorker)
            {
                nova.AddWorker();
            }
        });
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }
}
