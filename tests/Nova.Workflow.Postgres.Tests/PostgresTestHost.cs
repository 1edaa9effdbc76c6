using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>A host on the test server's data source, with the provider set by <c>postgres</c> and the rest by <c>configure</c>.</summary>
internal static class PostgresTestHost
{
    /// <summary>Built, not started (a test of start-up failures starts it itself).</summary>
    public static IHost Build(NpgsqlDataSource dataSource, Action<PostgresProviderOptions> postgres, Action<NovaWorkflowBuilder>? configure = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging();
        builder.Services.AddSingleton(dataSource);
        builder.Services.AddNovaWorkflows(nova =>
        {
            nova.UsePostgres(postgres);
            configure?.Invoke(nova);
        });
        return builder.Build();
    }

    public static async Task<IHost> StartAsync(NpgsqlDataSource dataSource, Action<PostgresProviderOptions> postgres, Action<NovaWorkflowBuilder> configure)
    {
        var host = Build(dataSource, postgres, configure);
        await host.StartAsync();
        return host;
    }
}
