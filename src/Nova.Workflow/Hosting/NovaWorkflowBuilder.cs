using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Nova.Workflow.Execution;
using Nova.Workflow.Handlers;
using Nova.Workflow.Hosting;
using Nova.Workflow.Storage;
using Nova.Workflow.Storage.InMemory;

namespace Nova.Workflow;

/// <summary>Configures Nova.Workflow in a host: handlers, workflows, options, storage and workers.</summary>
public sealed class NovaWorkflowBuilder
{
    internal NovaWorkflowBuilder(IServiceCollection services) => Services = services;

    /// <summary>The host's services (providers add their registrations here).</summary>
    public IServiceCollection Services { get; }

    /// <summary>Registers a handler class (<see cref="INodeHandler"/> or <see cref="INodeHandler{TIn, TOut}"/>) under <paramref name="name"/>; resolved from a scope per node run.</summary>
    public NovaWorkflowBuilder AddHandler<THandler>(string name)
        where THandler : class
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Services.TryAddScoped<THandler>();
        Services.AddSingleton(HandlerInvokers.ForType(name, typeof(THandler)));
        return this;
    }

    /// <summary>Registers a delegate handler with JSON in and out.</summary>
    public NovaWorkflowBuilder AddHandler(string name, Func<NodeContext, CancellationToken, ValueTask<JsonElement?>> handler)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(handler);
        Services.AddSingleton(new HandlerRegistration(name, (_, ctx, _, ct) => handler(ctx, ct), null));
        return this;
    }

    /// <summary>Registers a typed delegate handler.</summary>
    public NovaWorkflowBuilder AddHandler<TIn, TOut>(string name, Func<TIn, NodeContext, CancellationToken, ValueTask<TOut>> handler)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(handler);
        Services.AddSingleton(HandlerInvokers.ForDelegate(name, handler));
        return this;
    }

    /// <summary>Registers a workflow definition; it is validated when the host starts (an invalid one stops the start with the problems listed).</summary>
    public NovaWorkflowBuilder AddWorkflow(WorkflowDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        Services.AddSingleton(definition);
        return this;
    }

    /// <summary>Registers a workflow definition from JSON (see <see cref="WorkflowJson"/>).</summary>
    public NovaWorkflowBuilder AddWorkflowJson(string json) => AddWorkflow(WorkflowJson.Load(json));

    /// <summary>Configures the options.</summary>
    public NovaWorkflowBuilder Configure(Action<NovaWorkflowOptions> configure)
    {
        Services.Configure(configure);
        return this;
    }

    /// <summary>
    /// Runs a worker in this host serving the queues <paramref name="configure"/> names (default: the
    /// <c>default</c> queue with 4 × cores concurrency). A host that only starts workflows adds none.
    /// </summary>
    public NovaWorkflowBuilder AddWorker(Action<WorkerOptions>? configure = null)
    {
        var worker = new WorkerOptions();
        configure?.Invoke(worker);
        if (worker.Queues.Count == 0)
        {
            worker.Queue(WorkflowDefinition.DefaultQueue);
        }

        if (worker.MaxBatch < 1)
        {
            throw new ArgumentException("WorkerOptions.MaxBatch must be at least 1.", nameof(configure));
        }

        Services.AddSingleton<IHostedService>(sp => ActivatorUtilities.CreateInstance<WorkerService>(sp, worker));
        Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, MaintenanceService>());
        return this;
    }

    /// <summary>Uses the in-memory store and queue (the default): one process, nothing survives a restart.</summary>
    public NovaWorkflowBuilder UseInMemory() => UseStorage(
        sp => ActivatorUtilities.CreateInstance<InMemoryStateStore>(sp),
        sp => ActivatorUtilities.CreateInstance<InMemoryJobQueue>(sp));

    /// <summary>Uses a custom state store and job queue (how providers plug in).</summary>
    public NovaWorkflowBuilder UseStorage(Func<IServiceProvider, IStateStore> store, Func<IServiceProvider, IJobQueue> queue)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(queue);
        Services.RemoveAll<IStateStore>();
        Services.RemoveAll<IJobQueue>();
        Services.AddSingleton(store);
        Services.AddSingleton(queue);
        return this;
    }
}

/// <summary>Registration of Nova.Workflow in an <see cref="IServiceCollection"/>.</summary>
public static class NovaWorkflowServiceCollectionExtensions
{
    /// <summary>
    /// Adds the workflow client, registry and in-memory storage (replace it with UseRedis/UsePostgres).
    /// Safe to call more than once. Workers are opted into with <see cref="NovaWorkflowBuilder.AddWorker"/>.
    /// </summary>
    public static NovaWorkflowBuilder AddNovaWorkflows(this IServiceCollection services, Action<NovaWorkflowBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(d => d.ServiceType == typeof(NovaMarker)))
        {
            var again = new NovaWorkflowBuilder(services);
            configure?.Invoke(again);
            return again;
        }

        services.AddSingleton<NovaMarker>();
        services.AddOptions<NovaWorkflowOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NovaWorkflowOptions>, NovaWorkflowOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IStateStore>(sp => ActivatorUtilities.CreateInstance<InMemoryStateStore>(sp));
        services.TryAddSingleton<IJobQueue>(sp => ActivatorUtilities.CreateInstance<InMemoryJobQueue>(sp));
        services.TryAddSingleton(sp => new HandlerRegistry(sp.GetServices<HandlerRegistration>()));
        services.TryAddSingleton(sp => new WorkflowRegistry(sp.GetServices<WorkflowDefinition>(), sp.GetRequiredService<HandlerRegistry>()));
        services.TryAddSingleton<ExecutionEventHub>();
        services.TryAddSingleton<RunningRegistry>();
        services.TryAddSingleton<TransitionDispatcher>();
        services.TryAddSingleton<NodeRunner>();
        services.TryAddSingleton<LocalWorkers>();
        services.TryAddSingleton<IWorkflowClient, Client.WorkflowClient>();

        // First hosted service: building the registry validates every definition, so an invalid one stops the host.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, DefinitionValidationService>());
        var builder = new NovaWorkflowBuilder(services);
        configure?.Invoke(builder);
        return builder;
    }
}

/// <summary>Marks a service collection that already has the core registrations.</summary>
internal sealed class NovaMarker;

/// <summary>Validates the registered definitions when the host starts.</summary>
internal sealed class DefinitionValidationService(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = services.GetRequiredService<WorkflowRegistry>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
