using Nova.Workflow.Handlers;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Hosting;

/// <summary>Registered definitions by name and version, validated and compiled once.</summary>
internal sealed class WorkflowRegistry
{
    private readonly Dictionary<string, SortedDictionary<int, ExecutionPlan>> _plans = new(StringComparer.Ordinal);
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
        lock (_plans)
        {
            if (!_plans.TryGetValue(definition.Name, out var versions))
            {
                versions = [];
                _plans.Add(definition.Name, versions);
            }

            versions[definition.Version] = ExecutionPlan.Create(definition);
        }
    }

    /// <summary>The plan of this exact version, or null when this process has not registered it.</summary>
    public ExecutionPlan? Find(string name, int version)
    {
        lock (_plans)
        {
            return _plans.TryGetValue(name, out var versions) && versions.TryGetValue(version, out var plan) ? plan : null;
        }
    }

    /// <summary>The plan to start: the given version or the highest.</summary>
    public ExecutionPlan Get(string name, int? version)
    {
        lock (_plans)
        {
            if (!_plans.TryGetValue(name, out var versions) || versions.Count == 0)
            {
                throw new WorkflowNotFoundException(name, null);
            }

            if (version is { } v)
            {
                return versions.TryGetValue(v, out var plan) ? plan : throw new WorkflowNotFoundException(name, v);
            }

            return versions.Values.Last();
        }
    }
}
