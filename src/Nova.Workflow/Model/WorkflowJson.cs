using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nova.Workflow;

/// <summary>
/// Loads and saves <see cref="WorkflowDefinition"/> as JSON (the same model as the builder). Conditions
/// are JSON-path comparisons; C# predicates cannot be saved.
/// </summary>
public static class WorkflowJson
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Serializes the definition.</summary>
    /// <exception cref="NotSupportedException">An edge has a C# predicate condition.</exception>
    public static string Save(WorkflowDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var dto = new WorkflowDto
        {
            Name = definition.Name,
            Version = definition.Version,
            FailureMode = definition.FailureMode,
            DefaultRetry = definition.DefaultRetry == RetryPolicy.Default ? null : definition.DefaultRetry,
            Nodes = [.. definition.Nodes.Select(n => new NodeDto
            {
                Id = n.Id,
                Handler = n.Handler,
                Config = n.Config,
                Retry = n.Retry,
                SoftTimeLimit = n.SoftTimeLimit,
                HardTimeLimit = n.HardTimeLimit,
                Queue = n.Queue == WorkflowDefinition.DefaultQueue ? null : n.Queue,
                Priority = n.Priority == WorkflowDefinition.DefaultPriority ? null : n.Priority,
                RateLimit = n.RateLimit,
                TriggerRule = n.TriggerRule == TriggerRule.AllSucceeded ? null : n.TriggerRule,
            })],
            Edges = [.. definition.Edges.Select(e => new EdgeDto
            {
                Source = e.Source,
                Target = e.Target,
                Condition = e.Condition switch
                {
                    null => null,
                    JsonPathCondition c => new ConditionDto { Path = c.PathText, Op = c.Operator, Value = c.Value },
                    var other => throw new NotSupportedException(
                        $"Edge '{e.Source}' → '{e.Target}' has a C# condition ({other}), which cannot be saved; use EdgeCondition.Path for JSON workflows."),
                },
            })],
        };
        return JsonSerializer.Serialize(dto, Options);
    }

    /// <summary>Parses a definition. The result still has to pass validation (at registration or start).</summary>
    /// <exception cref="InvalidPayloadException">The JSON is malformed or misses a required field.</exception>
    public static WorkflowDefinition Load(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        WorkflowDto? dto;
        try
        {
            dto = JsonSerializer.Deserialize<WorkflowDto>(json, Options);
        }
        catch (JsonException ex)
        {
            throw new InvalidPayloadException($"Workflow JSON is malformed at {ex.Path ?? "$"} (line {ex.LineNumber + 1}): {ex.Message}");
        }

        if (dto is null || string.IsNullOrWhiteSpace(dto.Name))
        {
            throw new InvalidPayloadException("Workflow JSON needs a non-empty \"name\".");
        }

        var nodes = new List<NodeDefinition>();
        foreach (var n in dto.Nodes ?? [])
        {
            if (string.IsNullOrWhiteSpace(n.Id) || string.IsNullOrWhiteSpace(n.Handler))
            {
                throw new InvalidPayloadException($"Every node in workflow '{dto.Name}' needs an \"id\" and a \"handler\".");
            }

            nodes.Add(new NodeDefinition(n.Id, n.Handler)
            {
                Config = n.Config,
                Retry = n.Retry,
                SoftTimeLimit = n.SoftTimeLimit,
                HardTimeLimit = n.HardTimeLimit,
                Queue = n.Queue ?? WorkflowDefinition.DefaultQueue,
                Priority = n.Priority ?? WorkflowDefinition.DefaultPriority,
                RateLimit = n.RateLimit,
                TriggerRule = n.TriggerRule ?? TriggerRule.AllSucceeded,
            });
        }

        var edges = new List<EdgeDefinition>();
        foreach (var e in dto.Edges ?? [])
        {
            if (string.IsNullOrWhiteSpace(e.Source) || string.IsNullOrWhiteSpace(e.Target))
            {
                throw new InvalidPayloadException($"Every edge in workflow '{dto.Name}' needs a \"source\" and a \"target\".");
            }

            EdgeCondition? condition = null;
            if (e.Condition is { } c)
            {
                try
                {
                    condition = new JsonPathCondition(c.Path ?? string.Empty, c.Op, c.Value);
                }
                catch (ArgumentException ex)
                {
                    throw new InvalidPayloadException($"Edge '{e.Source}' → '{e.Target}': {ex.Message}");
                }
            }

            edges.Add(new EdgeDefinition(e.Source, e.Target, condition));
        }

        return new WorkflowDefinition(dto.Name, dto.Version ?? 1, nodes, edges, dto.DefaultRetry, dto.FailureMode ?? FailureMode.FailFast);
    }

    private sealed class WorkflowDto
    {
        public string? Name { get; set; }
        public int? Version { get; set; }
        public FailureMode? FailureMode { get; set; }
        public RetryPolicy? DefaultRetry { get; set; }
        public List<NodeDto>? Nodes { get; set; }
        public List<EdgeDto>? Edges { get; set; }
    }

    private sealed class NodeDto
    {
        public string? Id { get; set; }
        public string? Handler { get; set; }
        public JsonElement? Config { get; set; }
        public RetryPolicy? Retry { get; set; }
        public TimeSpan? SoftTimeLimit { get; set; }
        public TimeSpan? HardTimeLimit { get; set; }
        public string? Queue { get; set; }
        public int? Priority { get; set; }
        public RateLimit? RateLimit { get; set; }
        public TriggerRule? TriggerRule { get; set; }
    }

    private sealed class EdgeDto
    {
        public string? Source { get; set; }
        public string? Target { get; set; }
        public ConditionDto? Condition { get; set; }
    }

    private sealed class ConditionDto
    {
        public string? Path { get; set; }
        public ComparisonOperator Op { get; set; }
        public JsonElement? Value { get; set; }
    }
}
