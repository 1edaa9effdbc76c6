using System.Collections.Concurrent;
using Nova.Workflow.Handlers;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Hosting;

/// <summary>Registered definitions by name and version, validated and compiled once.</summary>
internal sealed class WorkflowRegistry
{
    // Every start and every node run looks a plan up; registration is rare. Each name's versions are copied on write,
    // so readers take no lock (a lock here was the second most contended one of in-memory runs).
    private readonly Lock _writeLock = new();
    private readonly ConcurrentDictionary<string, Versions> _plans = new(StringComparer.Ordinal);
    private readonly HandlerRegistry _handlers;

    public WorkflowRegistry(IEnumerable<WorkflowDefinition> definitions, HandlerRegistry handlers)
    {
        _handlers = handlers;
        var errors = new List<Exception>();
        foreach (var definition in definitions)
        {
            try
            {
                Add(definition);
            }
            catch (WorkflowValidationException ex)
            {
                errors.Add(ex);
            }
        }

        if (errors.Count == 1)
        {
            throw errors[0];
        }

        if (errors.Count > 1)
        {
            throw new AggregateException("Several workflow definitions are invalid.", errors);
        }
    }

    public void Add(WorkflowDefinition definition)
    {
        WorkflowValidator.Validate(definition, _handlers.Contains);
        var plan = ExecutionPlan.Create(definition);
        lock (_writeLock)
        {
            var all = _plans.TryGetValue(definition.Name, out var existing) ? new SortedDictionary<int, ExecutionPlan>(existing.All) : [];
            all[definition.Version] = plan;
            _plans[definition.Name] = new Versions(all, all[all.Keys.Max()]);
        }
    }

    /// <summary>The plan of this exact version, or null when this process has not registered it.</summary>
    public ExecutionPlan? Find(string name, int version)
    {
        return _plans.TryGetValue(name, out var versions) && versions.All.TryGetValue(version, out var plan) ? plan : null;
    }

    /// <summary>The plan to start: the given version or the highest.</summary>
    public ExecutionPlan Get(string name, int? version)
    {
        if (!_plans.TryGetValue(name, out var versions))
        {
            throw new WorkflowNotFoundException(name, null);
        }

        if (version is { } v)
        {
            return versions.All.TryGetValue(v, out var plan) ? plan : throw new WorkflowNotFoundException(name, v);
        }

        return versions.Latest;
    }

    /// <summary>One name's versions; never changed once published.</summary>
    private sealed record Versions(SortedDictionary<int, ExecutionPlan> All, ExecutionPlan Latest);
}
