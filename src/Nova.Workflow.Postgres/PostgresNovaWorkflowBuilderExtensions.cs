using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Nova.Workflow.Postgres;

/// <summary>Registers the PostgreSQL provider.</summary>
public static class PostgresNovaWorkflowBuilderExtensions
{
    /// <summary>Uses PostgreSQL for state and queue, with the app's <see cref="NpgsqlDataSource"/> from DI.</summary>
    public static NovaWorkflowBuilder UsePostgres(this NovaWorkflowBuilder builder, Action<PostgresProviderOptions>? configure = null)
    {
        AddCore(builder, configure);
        return builder.UseStorage(sp => sp.GetRequiredService<PostgresStateStore>(), sp => sp.GetRequiredService<PostgresJobQueue>());
    }

    /// <summary>Uses PostgreSQL at <paramref name="connectionString"/>.</summary>
    public static NovaWorkflowBuilder UsePostgres(this NovaWorkflowBuilder builder, string connectionString, Action<PostgresProviderOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        builder.Services.TryAddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        return builder.UsePostgres(configure);
    }

    /// <summary>
    /// Uses PostgreSQL for state only, keeping the job queue already configured (e.g. Redis for delivery).
    /// The state commits first; the sweeper re-enqueues a node whose enqueue was lost in between.
    /// </summary>
    public static NovaWorkflowBuilder UsePostgresState(this NovaWorkflowBuilder builder, Action<PostgresProviderOptions>? configure = null)
    {
        AddCore(builder, configure);
        builder.Services.RemoveAll<Storage.IStateStore>();
        builder.Services.AddSingleton<Storage.IStateStore>(sp => sp.GetRequiredService<PostgresStateStore>());

        // Events come from the state store's transitions; with PostgreSQL state, watchers use the in-process hub and polling.
        builder.Services.RemoveAll<Execution.IRemoteEvents>();
        return builder;
    }

    private static void AddCore(NovaWorkflowBuilder builder, Action<PostgresProviderOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddOptions<PostgresProviderOptions>().ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PostgresProviderOptions>, PostgresProviderOptionsValidator>());
        services.TryAddSingleton<PostgresStateStore>();
        services.TryAddSingleton<PostgresJobQueue>();
        services.TryAddSingleton<PostgresHealthCheck>();

        // Migrations run before every other hosted service, so no worker fetches from a missing table.
        if (!services.Any(d => d.ImplementationType == typeof(PostgresMigrationService)))
        {
            services.Insert(0, ServiceDescriptor.Singleton<IHostedService, PostgresMigrationService>());
        }
    }
}
